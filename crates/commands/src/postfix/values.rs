//! Typed parameter values: whether an (already `$name`-expanded) main.cf value is a valid
//! boolean, int, long, time or string for its registry entry, with Postfix's messages.
//!
//! Pure: the caller looks the parameter up and expands the value. The conversions follow
//! Postfix's global/mail_conf_{bool,int,long,time,str,raw}.c and global/conv_time.c: numbers
//! are read as C's `strtol(s, &end, 10)` reads them (leading white space and a sign are
//! allowed), ints must fit 32 bits, a time is a non-negative int followed by an optional
//! unit letter whose trailing text Postfix 3.7 ignores, and a bound of 0 means "no bound".

use tern_config::registry::{Param, ParamType};

/// Why a value is refused; `Display` is Postfix's fatal message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("bad boolean configuration: {name} = {value}")]
    Bool { name: String, value: String },
    #[error("bad numerical configuration: {name} = {value}")]
    Number { name: String, value: String },
    #[error("invalid {name} parameter value {value} < {min}")]
    NumberTooSmall { name: String, value: i64, min: i64 },
    #[error("invalid {name} parameter value {value} > {max}")]
    NumberTooLarge { name: String, value: i64, max: i64 },
    #[error("parameter {name}: bad time value or unit: {value}")]
    Time { name: String, value: String },
    #[error("invalid {name}: {value} (min {min})")]
    TimeTooSmall { name: String, value: i64, min: i64 },
    #[error("invalid {name}: {value} (max {max})")]
    TimeTooLarge { name: String, value: i64, max: i64 },
    #[error("bad string length {len} < {min}: {name} = {value}")]
    StrTooShort {
        name: String,
        value: String,
        len: usize,
        min: i64,
    },
    #[error("bad string length {len} > {max}: {name} = {value}")]
    StrTooLong {
        name: String,
        value: String,
        len: usize,
        max: i64,
    },
    #[error("bad string length ({len} < {min}): {name} = {value}")]
    RawTooShort {
        name: String,
        value: String,
        len: usize,
        min: i64,
    },
    #[error("bad string length ({len} > {max}): {name} = {value}")]
    RawTooLong {
        name: String,
        value: String,
        len: usize,
        max: i64,
    },
}

/// Checks `value` (expanded, except for raw parameters) against `param`'s type and bounds.
pub fn check(param: &Param, value: &str) -> Result<(), ValueError> {
    let name = param.name.to_owned();
    let (min, max) = (param.min, param.max);
    match param.ty {
        ParamType::Bool => {
            // mail_conf_bool.c: "yes" or "no", any case.
            if value.eq_ignore_ascii_case("yes") || value.eq_ignore_ascii_case("no") {
                Ok(())
            } else {
                Err(ValueError::Bool {
                    name,
                    value: value.to_owned(),
                })
            }
        }
        ParamType::Int | ParamType::Long => {
            let number = Strtol::parse(value);
            let fits = param.ty == ParamType::Long || i32::try_from(number.value).is_ok();
            if value.is_empty() || number.end != value.len() || number.overflow || !fits {
                return Err(ValueError::Number {
                    name,
                    value: value.to_owned(),
                });
            }
            let value = number.value;
            if min != 0 && value < min {
                return Err(ValueError::NumberTooSmall { name, value, min });
            }
            if max != 0 && value > max {
                return Err(ValueError::NumberTooLarge { name, value, max });
            }
            Ok(())
        }
        ParamType::Time(unit) => {
            let Some(value) = seconds(value, unit) else {
                return Err(ValueError::Time {
                    name,
                    value: value.to_owned(),
                });
            };
            if min != 0 && value < min {
                return Err(ValueError::TimeTooSmall { name, value, min });
            }
            if max != 0 && value > max {
                return Err(ValueError::TimeTooLarge { name, value, max });
            }
            Ok(())
        }
        ParamType::Str | ParamType::Raw => {
            // Postfix counts bytes (strlen).
            let len = value.len();
            let raw = param.ty == ParamType::Raw;
            let too_short = usize::try_from(min).is_ok_and(|m| m != 0 && len < m);
            let too_long = usize::try_from(max).is_ok_and(|m| m != 0 && len > m);
            let value = value.to_owned();
            match (too_short, too_long, raw) {
                (true, _, false) => Err(ValueError::StrTooShort {
                    name,
                    value,
                    len,
                    min,
                }),
                (true, _, true) => Err(ValueError::RawTooShort {
                    name,
                    value,
                    len,
                    min,
                }),
                (false, true, false) => Err(ValueError::StrTooLong {
                    name,
                    value,
                    len,
                    max,
                }),
                (false, true, true) => Err(ValueError::RawTooLong {
                    name,
                    value,
                    len,
                    max,
                }),
                (false, false, _) => Ok(()),
            }
        }
    }
}

/// A time value in seconds, as conv_time() computes it: `None` when it is not a valid time.
pub fn seconds(value: &str, default_unit: char) -> Option<i64> {
    let number = Strtol::parse(value);
    if value.is_empty() || number.overflow {
        return None;
    }
    let count = i32::try_from(number.value).ok().filter(|n| *n >= 0)?;
    // Postfix 3.7 looks at the first character after the number only ("10sx" is 10s).
    let unit = value[number.end..].chars().next().unwrap_or(default_unit);
    let scale: i32 = match unit {
        'w' => 7 * 24 * 3600,
        'd' => 24 * 3600,
        'h' => 3600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    // conv_time.c refuses counts at or above INT_MAX / unit, seconds included only for
    // the larger units; `s` takes any non-negative int.
    if scale > 1 && count >= i32::MAX / scale {
        return None;
    }
    Some(i64::from(count) * i64::from(scale))
}

/// The result of C's `strtol(s, &end, 10)` on a 64-bit system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Strtol {
    /// The value, clamped to the i64 range on overflow.
    value: i64,
    /// Byte offset of the first character not used (0 when there were no digits).
    end: usize,
    /// Whether the number was out of range (errno ERANGE).
    overflow: bool,
}

impl Strtol {
    fn parse(s: &str) -> Strtol {
        let bytes = s.as_bytes();
        let mut i = 0;
        // isspace() in the C locale.
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            i += 1;
        }
        let mut negative = false;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            negative = bytes[i] == b'-';
            i += 1;
        }
        let digits_start = i;
        let mut magnitude: i128 = 0;
        let mut overflow = false;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            if !overflow {
                magnitude = magnitude * 10 + i128::from(bytes[i] - b'0');
                if magnitude > i128::from(i64::MAX) + 1 {
                    overflow = true;
                }
            }
            i += 1;
        }
        if i == digits_start {
            return Strtol {
                value: 0,
                end: 0,
                overflow: false,
            };
        }
        let signed = if negative { -magnitude } else { magnitude };
        let value = i64::try_from(signed).unwrap_or_else(|_| {
            overflow = true;
            if negative { i64::MIN } else { i64::MAX }
        });
        Strtol {
            value,
            end: i,
            overflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use tern_config::registry::DefaultValue;

    use super::*;

    fn param(name: &'static str, ty: ParamType, min: i64, max: i64) -> Param {
        Param {
            name,
            ty,
            default: DefaultValue::Text(""),
            min,
            max,
            description: "",
        }
    }

    #[test]
    fn strtol_reads_like_c() {
        let cases: &[(&str, i64, usize, bool)] = &[
            ("12", 12, 2, false),
            ("  +600", 600, 6, false),
            ("-7x", -7, 2, false),
            ("abc", 0, 0, false),
            ("", 0, 0, false),
            ("-", 0, 0, false),
            ("0x10", 0, 1, false),
            ("99999999999999999999", i64::MAX, 20, true),
            ("-9223372036854775808", i64::MIN, 20, false),
        ];
        for &(s, value, end, overflow) in cases {
            assert_eq!(
                Strtol::parse(s),
                Strtol {
                    value,
                    end,
                    overflow
                },
                "{s:?}"
            );
        }
    }

    #[test]
    fn time_values_as_conv_time() {
        let cases: &[(&str, char, Option<i64>)] = &[
            ("10", 's', Some(10)),
            ("10", 'h', Some(36000)),
            ("2m", 's', Some(120)),
            ("1w", 's', Some(604_800)),
            ("5sx", 's', Some(5)),
            ("s", 's', Some(0)),
            ("10x", 's', None),
            ("-1", 's', None),
            ("", 's', None),
            ("99999999999", 's', None),
            ("2147483647", 's', Some(2_147_483_647)),
            ("3549w", 's', Some(3549 * 604_800)),
            ("3550w", 's', None),
        ];
        for &(s, unit, want) in cases {
            assert_eq!(seconds(s, unit), want, "{s:?}");
        }
    }

    #[test]
    fn messages_are_postfixs() {
        let cases: &[(Param, &str, Option<&str>)] = &[
            (param("b", ParamType::Bool, 0, 0), "YES", None),
            (
                param("disable_dns_lookups", ParamType::Bool, 0, 0),
                "maybe",
                Some("bad boolean configuration: disable_dns_lookups = maybe"),
            ),
            (
                param("message_size_limit", ParamType::Long, 0, 0),
                "1k",
                Some("bad numerical configuration: message_size_limit = 1k"),
            ),
            (
                param("line_length_limit", ParamType::Int, 512, 0),
                "10",
                Some("invalid line_length_limit parameter value 10 < 512"),
            ),
            (
                param("line_length_limit", ParamType::Int, 512, 0),
                " +600",
                None,
            ),
            (
                param("i", ParamType::Int, 0, 0),
                "3000000000",
                Some("bad numerical configuration: i = 3000000000"),
            ),
            (param("l", ParamType::Long, 0, 0), "3000000000", None),
            (
                param("i", ParamType::Int, 0, 5),
                "6",
                Some("invalid i parameter value 6 > 5"),
            ),
            (
                param("i", ParamType::Int, 0, 0),
                "",
                Some("bad numerical configuration: i = "),
            ),
            (
                param("ipc_timeout", ParamType::Time('s'), 1, 0),
                "0",
                Some("invalid ipc_timeout: 0 (min 1)"),
            ),
            (
                param("in_flow_delay", ParamType::Time('s'), 0, 10),
                "20s",
                Some("invalid in_flow_delay: 20 (max 10)"),
            ),
            (
                param("ipc_timeout", ParamType::Time('s'), 1, 0),
                "10x",
                Some("parameter ipc_timeout: bad time value or unit: 10x"),
            ),
            (
                param("mail_owner", ParamType::Str, 1, 0),
                "",
                Some("bad string length 0 < 1: mail_owner = "),
            ),
            (
                param("s", ParamType::Str, 0, 2),
                "abc",
                Some("bad string length 3 > 2: s = abc"),
            ),
            (
                param("r", ParamType::Raw, 1, 0),
                "",
                Some("bad string length (0 < 1): r = "),
            ),
            (param("s", ParamType::Str, 0, 0), "", None),
        ];
        for (p, value, want) in cases {
            let got = check(p, value).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want, "{} = {value:?}", p.name);
        }
    }
}
