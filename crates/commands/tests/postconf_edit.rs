//! Side-by-side test of `postconf -e`, `-X` and `-#` against Debian's Postfix 3.7.
//!
//! A realistic, commented 200-line main.cf (`tests/postconf-edit/main.cf`) is copied into two
//! temp dirs, A for Debian's postconf and B for ours. The same sequence of edits runs on both;
//! after each step the two main.cf files must be byte-identical (content and mode), the two
//! commands must print the same and exit alike, and every line of the original that no edit
//! so far has touched must still be there, byte for byte and in order.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{normalize, our_postconf, require_debian_postconf, run, show};

/// One edit: the postconf arguments after `-c DIR`, and the parameter names it touches.
struct Step {
    args: &'static [&'static str],
    touches: &'static [&'static str],
}

const STEPS: &[Step] = &[
    // Change a one-line parameter.
    Step {
        args: &["-e", "myhostname = mx2.example.com"],
        touches: &["myhostname"],
    },
    // Change a parameter whose value spans continuation lines.
    Step {
        args: &["-e", "mydestination = $myhostname, localhost"],
        touches: &["mydestination"],
    },
    // Append new names, one per run: Postfix appends several new names in the order of a
    // hash table randomised per process, so only one at a time has a defined place. The
    // second value has inner spaces.
    Step {
        args: &["-e", "new_param_one = 1"],
        touches: &["new_param_one"],
    },
    Step {
        args: &["-e", "new_param_two = two  words  "],
        touches: &["new_param_two"],
    },
    // A name that exists only in a comment (#delay_warning_time) is appended, not uncommented.
    Step {
        args: &["-e", "delay_warning_time = 4h"],
        touches: &["delay_warning_time"],
    },
    // Several edits at once, one of them `name=value` without spaces.
    Step {
        args: &[
            "-e",
            "biff=yes",
            "smtpd_banner = $myhostname ESMTP",
            "message_size_limit = 0",
        ],
        touches: &["biff", "smtpd_banner", "message_size_limit"],
    },
    // Remove a parameter with continuation lines.
    Step {
        args: &["-X", "relay_domains"],
        touches: &["relay_domains"],
    },
    // Remove an unknown name along with a known one.
    Step {
        args: &["-X", "nosuch_param", "readme_directory"],
        touches: &["readme_directory"],
    },
    // Comment out parameters, one with continuation lines.
    Step {
        args: &["-#", "mynetworks", "smtpd_relay_restrictions"],
        touches: &["mynetworks", "smtpd_relay_restrictions"],
    },
    // Comment out a name that is not there.
    Step {
        args: &["-#", "nosuch_param2"],
        touches: &[],
    },
    // A value whose first line is empty and which continues over six lines.
    Step {
        args: &[
            "-e",
            "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination",
        ],
        touches: &["smtpd_recipient_restrictions"],
    },
    // Edit a line that an earlier step appended, then remove another.
    Step {
        args: &["-e", "new_param_one = changed"],
        touches: &["new_param_one"],
    },
    Step {
        args: &["-X", "new_param_two"],
        touches: &["new_param_two"],
    },
    // Set again a name that was commented out.
    Step {
        args: &["-e", "mynetworks = 127.0.0.0/8"],
        touches: &["mynetworks"],
    },
    // An empty value, and a value with a dollar expression that is not expanded.
    Step {
        args: &[
            "-e",
            "relayhost =",
            "virtual_alias_maps = ${{$compatibility_level} < {2} ? {x} : {y}}",
        ],
        touches: &["relayhost", "virtual_alias_maps"],
    },
    // Comment out the last parameter of the file.
    Step {
        args: &["-#", "header_size_limit"],
        touches: &["header_size_limit"],
    },
];

#[test]
fn postconf_edits_match_debian() {
    require_debian_postconf();
    let ours = our_postconf();
    let debian = Path::new(common::DEBIAN_POSTCONF);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postconf-edit/main.cf");
    let original = fs::read(&src).expect("read tests/postconf-edit/main.cf");
    let master =
        fs::read(common::cases_dir().join("default-master.cf")).expect("read default-master.cf");

    let a = make_dir(&original, &master);
    let b = make_dir(&original, &master);
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut problems: Vec<String> = Vec::new();

    for (n, step) in STEPS.iter().enumerate() {
        touched.extend(step.touches.iter().copied());
        let shown: Vec<String> = step.args.iter().map(|a| shell_quote(a)).collect();
        let label = format!("step {}: postconf -c $DIR {}", n + 1, shown.join(" "));
        let run_in = |dir: &Path, bin: &Path| {
            common::age_files(dir).expect("age files");
            let mut args = vec!["-c".to_string(), dir.to_string_lossy().into_owned()];
            args.extend(step.args.iter().map(|s| (*s).to_string()));
            normalize(&run(bin, &args, false), dir)
        };
        let expected = run_in(a.path(), debian);
        let got = run_in(b.path(), &ours);
        if expected != got {
            problems.push(format!(
                "{label}: command output differs\n  expected exit {}, stdout {:?}, stderr {:?}\n  \
                 got      exit {}, stdout {:?}, stderr {:?}",
                expected.status,
                show(&expected.stdout, 500),
                show(&expected.stderr, 500),
                got.status,
                show(&got.stdout, 500),
                show(&got.stderr, 500),
            ));
        }
        let fa = fs::read(a.path().join("main.cf")).expect("Debian's main.cf after the edit");
        let fb = fs::read(b.path().join("main.cf")).unwrap_or_default();
        if fa != fb {
            problems.push(format!("{label}: main.cf differs{}", line_diff(&fa, &fb)));
            // Start the next step from Debian's file so each step is judged on its own.
            fs::write(b.path().join("main.cf"), &fa).expect("resync main.cf");
        }
        let mode = |d: &Path| {
            fs::metadata(d.join("main.cf")).map_or_else(
                |_| "none".to_string(),
                |m| format!("{:o}", m.permissions().mode()),
            )
        };
        if mode(a.path()) != mode(b.path()) {
            problems.push(format!(
                "{label}: main.cf mode differs: expected {}, got {}",
                mode(a.path()),
                mode(b.path())
            ));
        }
        if let Err(e) = untouched_lines_kept(&original, &fa, &touched) {
            // Debian's own file breaks the rule: the test's model of the edits is wrong.
            problems.push(format!(
                "{label}: Debian's result (test model is wrong?): {e}"
            ));
        }
        if let Err(e) = untouched_lines_kept(&original, &fb, &touched) {
            problems.push(format!("{label}: ours: {e}"));
        }
        if problems.len() > 20 {
            break;
        }
    }
    assert!(
        problems.is_empty(),
        "postconf edits differ from Debian's (ours: {}):\n\n{}",
        ours.display(),
        problems.join("\n\n")
    );
}

fn make_dir(main: &[u8], master: &[u8]) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("postconf-edit.")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    fs::write(d.path().join("main.cf"), main).expect("write main.cf");
    fs::write(d.path().join("master.cf"), master).expect("write master.cf");
    d
}

/// The parameter each line of a main.cf belongs to: a logical line starts at a line that
/// begins with a non-space, non-`#` character; lines starting with whitespace continue it;
/// comment and blank lines belong to none.
fn owners(text: &[u8]) -> Vec<(&[u8], Option<&[u8]>)> {
    let mut current: Option<&[u8]> = None;
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let blank = body.iter().all(u8::is_ascii_whitespace);
            let owner = if blank || body.first() == Some(&b'#') {
                None
            } else if body[0].is_ascii_whitespace() {
                current
            } else {
                let end = body
                    .iter()
                    .position(|&b| b == b'=' || b.is_ascii_whitespace())
                    .unwrap_or(body.len());
                current = Some(&body[..end]);
                current
            };
            (line, owner)
        })
        .collect()
}

/// Checks that the original's lines owned by no touched name appear in `now`, in order, and
/// that every other line of `now` is a (possibly commented-out) line of a touched name.
fn untouched_lines_kept(
    original: &[u8],
    now: &[u8],
    touched: &BTreeSet<&str>,
) -> Result<(), String> {
    let is_touched =
        |o: Option<&[u8]>| o.is_some_and(|n| touched.contains(String::from_utf8_lossy(n).as_ref()));
    let keep: Vec<&[u8]> = owners(original)
        .into_iter()
        .filter(|(_, o)| !is_touched(*o))
        .map(|(l, _)| l)
        .collect();
    let now_lines: Vec<&[u8]> = now.split_inclusive(|&b| b == b'\n').collect();
    let mut k = 0;
    let mut in_touched = false;
    for (i, line) in now_lines.iter().enumerate() {
        if k < keep.len() && *line == keep[k] {
            k += 1;
            in_touched = false;
            continue;
        }
        let body = line.strip_prefix(b"#").unwrap_or(line);
        let starts_touched = touched.iter().any(|n| {
            body.starts_with(n.as_bytes())
                && body
                    .get(n.len())
                    .is_some_and(|&c| c == b'=' || c == b' ' || c == b'\t')
        });
        let continues = body.first().is_some_and(u8::is_ascii_whitespace);
        if starts_touched || (in_touched && continues) {
            in_touched = true;
            continue;
        }
        return Err(format!(
            "line {} is neither an untouched original line nor an edited one: {:?}",
            i + 1,
            show(line, 200)
        ));
    }
    if k < keep.len() {
        return Err(format!(
            "untouched original line lost: {:?}",
            show(keep[k], 200)
        ));
    }
    Ok(())
}

/// An argument as a shell would need it.
fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:#".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// The first differing line of two files.
fn line_diff(e: &[u8], g: &[u8]) -> String {
    let el: Vec<&[u8]> = e.split(|&b| b == b'\n').collect();
    let gl: Vec<&[u8]> = g.split(|&b| b == b'\n').collect();
    for i in 0..el.len().max(gl.len()) {
        if el.get(i) != gl.get(i) {
            return format!(
                " from line {}:\n  expected: {:?}\n  got:      {:?}",
                i + 1,
                el.get(i)
                    .map_or_else(|| "<end of file>".to_string(), |l| show(l, 200)),
                gl.get(i)
                    .map_or_else(|| "<end of file>".to_string(), |l| show(l, 200)),
            );
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{owners, untouched_lines_kept};

    #[test]
    fn owners_follow_continuations() {
        let text = b"# c\na = 1\n  2\n\nb=3\n";
        let got: Vec<Option<&[u8]>> = owners(text).into_iter().map(|(_, o)| o).collect();
        assert_eq!(
            got,
            vec![
                None,
                Some(&b"a"[..]),
                Some(&b"a"[..]),
                None,
                Some(&b"b"[..])
            ]
        );
    }

    #[test]
    fn untouched_check_table() {
        let orig = b"# c\na = 1\n  2\nb = 3\n";
        let touched: BTreeSet<&str> = ["a"].into_iter().collect();
        let table: &[(&[u8], bool)] = &[
            (b"# c\na = x\nb = 3\n", true),
            (b"# c\n#a = 1\n#  2\nb = 3\n", true),
            (b"# c\nb = 3\na = 9\n", true),
            (b"# c\nb = 4\n", false),
            (b"b = 3\n", false),
            (b"# c\nb = 3\nz = 1\n", false),
        ];
        for (now, ok) in table {
            assert_eq!(
                untouched_lines_kept(orig, now, &touched).is_ok(),
                *ok,
                "{}",
                String::from_utf8_lossy(now)
            );
        }
    }
}
