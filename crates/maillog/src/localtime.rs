//! The local time zone's offset from UTC, for the time stamps Postfix writes in local time
//! (`strftime` after `localtime()` in util/msg_logger.c).
//!
//! Read once per process, as the C library does: `TZ` when set (`UTC`, `:Europe/Berlin`,
//! an absolute path), else /etc/localtime; the zone is a TZif file (RFC 8536) whose
//! transition table gives the offset. Anything unreadable means UTC.
//!
//! XXX: times after the file's last transition use that transition's offset; the POSIX TZ
//! rule in the file's footer (RFC 8536 section 3.3), which "slim" zone files rely on for
//! future daylight-saving changes, is not evaluated.
//!
//! Trust: the zone file belongs to the system (root); a malformed one gives UTC, never a
//! panic.

use std::sync::OnceLock;

/// Seconds east of UTC at `unix_seconds`, in the process's local time zone.
pub fn local_utc_offset(unix_seconds: i64) -> i32 {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(load).offset_at(unix_seconds)
}

/// Transitions (time, offset from then on) in ascending time, and the offset before them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Zone {
    initial: i32,
    transitions: Vec<(i64, i32)>,
}

impl Zone {
    fn offset_at(&self, t: i64) -> i32 {
        match self.transitions.partition_point(|(at, _)| *at <= t) {
            0 => self.initial,
            n => self.transitions[n - 1].1,
        }
    }
}

fn load() -> Zone {
    let path = match std::env::var("TZ") {
        Ok(tz) => {
            let tz = tz.strip_prefix(':').unwrap_or(&tz).to_string();
            if tz.is_empty() || tz == "UTC" || tz == "UTC0" || tz == "GMT" {
                return Zone::default();
            }
            if tz.starts_with('/') {
                tz
            } else {
                format!("/usr/share/zoneinfo/{tz}")
            }
        }
        Err(_) => "/etc/localtime".to_string(),
    };
    std::fs::read(path)
        .ok()
        .and_then(|data| parse_tzif(&data))
        .unwrap_or_default()
}

/// Parses a TZif file; `None` when it is malformed.
fn parse_tzif(data: &[u8]) -> Option<Zone> {
    let header = Header::parse(data)?;
    // Version 2 and later repeat the data with 64-bit times after the version 1 block.
    if header.version >= b'2' {
        let v2 = data.get(header.v1_len()..)?;
        let header2 = Header::parse(v2)?;
        return header2.zone(v2.get(44..)?, 8);
    }
    header.zone(data.get(44..)?, 4)
}

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn parse(data: &[u8]) -> Option<Self> {
        if data.get(..4)? != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let bytes: [u8; 4] = data.get(20 + 4 * i..24 + 4 * i)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(bytes)).ok()
        };
        Some(Self {
            version: *data.get(4)?,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// The length of the header and version 1 data block (32-bit times).
    fn v1_len(&self) -> usize {
        44 + self.timecnt * 5
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * 8
            + self.isstdcnt
            + self.isutcnt
    }

    /// Reads the transition table from `body` with `width`-byte times.
    fn zone(&self, body: &[u8], width: usize) -> Option<Zone> {
        let times = body.get(..self.timecnt * width)?;
        let indices = body.get(self.timecnt * width..self.timecnt * (width + 1))?;
        let types = body
            .get(self.timecnt * (width + 1)..)?
            .get(..self.typecnt * 6)?;
        let offset_of = |i: usize| -> Option<i32> {
            let bytes: [u8; 4] = types.get(i * 6..i * 6 + 4)?.try_into().ok()?;
            Some(i32::from_be_bytes(bytes))
        };
        let mut transitions = Vec::with_capacity(self.timecnt);
        for (chunk, index) in times.chunks_exact(width).zip(indices) {
            let at = if width == 8 {
                i64::from_be_bytes(chunk.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(chunk.try_into().ok()?))
            };
            transitions.push((at, offset_of(usize::from(*index))?));
        }
        Some(Zone {
            initial: offset_of(0)?,
            transitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 TZif file with two types (+3600, +7200) and two transitions.
    fn sample() -> Vec<u8> {
        let mut v = b"TZif".to_vec();
        v.push(0);
        v.extend([0u8; 15]);
        for count in [0u32, 0, 0, 2, 2, 4] {
            v.extend(count.to_be_bytes());
        }
        v.extend(1000i32.to_be_bytes());
        v.extend(2000i32.to_be_bytes());
        v.extend([1u8, 0]);
        v.extend(3600i32.to_be_bytes());
        v.extend([0, 0]);
        v.extend(7200i32.to_be_bytes());
        v.extend([1, 0]);
        v.extend(b"CET\0");
        v
    }

    #[test]
    fn offsets_from_a_table() {
        let zone = parse_tzif(&sample()).unwrap();
        let cases = [
            (0, 3600),
            (999, 3600),
            (1000, 7200),
            (1999, 7200),
            (2000, 3600),
            (9999, 3600),
        ];
        for (t, want) in cases {
            assert_eq!(zone.offset_at(t), want, "{t}");
        }
    }

    #[test]
    fn malformed_files_give_none() {
        let data = sample();
        for len in 0..data.len() {
            // Cut short anywhere, the table is missing: never a panic.
            let _ = parse_tzif(&data[..len]);
        }
        assert!(parse_tzif(b"TZjf").is_none());
    }

    #[test]
    fn system_zone_files_parse() {
        for path in [
            "/usr/share/zoneinfo/Europe/Berlin",
            "/usr/share/zoneinfo/America/New_York",
        ] {
            if let Ok(data) = std::fs::read(path) {
                let zone = parse_tzif(&data).unwrap();
                // 2024-01-15 and 2024-07-15, winter and summer.
                let (winter, summer) =
                    (zone.offset_at(1_705_312_800), zone.offset_at(1_721_037_600));
                assert!(winter != summer && winter.abs() <= 5 * 3600, "{path}");
            }
        }
    }
}
