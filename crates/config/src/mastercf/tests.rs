//! Expectations observed from Debian 12's `postconf` (Postfix 3.7.11). The golden files in
//! `testdata/` are its output for the same input (`postconf -c DIR -M`, `-Mf`, `-F`, `-Ff`,
//! `-P`, `-Pf`); `*.warn` holds the parser's warnings (postconf's "unused parameter"
//! warnings, which need the parameter registry, are left out).

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_string()).collect()
}

fn parse(text: &str) -> MasterCf {
    MasterCf::parse(text.as_bytes(), "P").expect("test input parses")
}

#[test]
fn golden() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "debian",
            include_bytes!("testdata/debian.cf"),
            include_str!("testdata/debian.warn"),
        ),
        (
            "tricky",
            include_bytes!("testdata/tricky.cf"),
            include_str!("testdata/tricky.warn"),
        ),
    ];
    let refs: &[(&str, &str, &str)] = &[
        ("debian", "M", include_str!("testdata/debian.M.ref")),
        ("debian", "Mf", include_str!("testdata/debian.Mf.ref")),
        ("debian", "F", include_str!("testdata/debian.F.ref")),
        ("debian", "Ff", include_str!("testdata/debian.Ff.ref")),
        ("debian", "P", include_str!("testdata/debian.P.ref")),
        ("debian", "Pf", include_str!("testdata/debian.Pf.ref")),
        ("tricky", "M", include_str!("testdata/tricky.M.ref")),
        ("tricky", "Mf", include_str!("testdata/tricky.Mf.ref")),
        ("tricky", "F", include_str!("testdata/tricky.F.ref")),
        ("tricky", "Ff", include_str!("testdata/tricky.Ff.ref")),
        ("tricky", "P", include_str!("testdata/tricky.P.ref")),
        ("tricky", "Pf", include_str!("testdata/tricky.Pf.ref")),
    ];
    for (name, input, warn) in cases {
        let cf = MasterCf::parse(input, "P").expect("golden input parses");
        assert_eq!(
            cf.warnings,
            warn.lines().collect::<Vec<_>>(),
            "{name} warnings"
        );
        for (_, mode, want) in refs.iter().filter(|r| r.0 == *name) {
            let fold = mode.ends_with('f');
            let opts = ShowOptions {
                fold,
                ..ShowOptions::default()
            };
            let got = match &mode[..1] {
                "M" => show_entries(&cf, &[], fold),
                "F" => show_fields(&cf, &[], opts),
                _ => show_params(&cf, &[], opts),
            }
            .expect("no patterns");
            assert_eq!(got.text, *want, "{name} -{mode}");
            assert!(got.warnings.is_empty());
        }
    }
}

#[test]
fn fatal_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"a inet n - n - - \n", "file P: line 1: bad field count"),
        (
            b"# c\n\nb unix - - n - - x\n\n  \nc unix\n",
            "file P: line 6: bad field count",
        ),
        (
            b"\0a inet n - n - - smtpd\n",
            "file P: line 1: bad field count",
        ),
        (
            b"a bogus n - n - - smtpd\n",
            "invalid type field \"bogus\" in \"a bogus n - n - - smtpd\"",
        ),
        (
            b"a UNIX n - n - - smtpd\n",
            "invalid type field \"UNIX\" in \"a UNIX n - n - - smtpd\"",
        ),
        (
            b"a {inet} n - n - - x\n",
            "invalid type field \"{inet}\" in \"a {inet} n - n - - x\"",
        ),
        (
            b"a bogus n - n - - smtpd\r\n",
            "invalid type field \"bogus\" in \"a bogus n - n - - smtpd?\"",
        ),
        (
            b"a bogus n - n - - smtpd\n  -o x=1\n",
            "invalid type field \"bogus\" in \"a bogus n - n - - smtpd  -o x=1\"",
        ),
        (
            b"a\tbogus n - n - - x\n",
            "invalid type field \"bogus\" in \"a?bogus n - n - - x\"",
        ),
        (
            "a bögus n - n - - x\n".as_bytes(),
            "invalid type field \"b??gus\" in \"a b??gus n - n - - x\"",
        ),
        (
            b"a inet x - n - - smtpd\n",
            "invalid private field \"x\" in \"a inet x - n - - smtpd\"",
        ),
        (
            b"a inet nn - n - - x\n",
            "invalid private field \"nn\" in \"a inet nn - n - - x\"",
        ),
        (
            b"a inet - Y n - - x\n",
            "invalid unprivileged field \"Y\" in \"a inet - Y n - - x\"",
        ),
        (
            b"a inet - - 1 - - x\n",
            "invalid chroot field \"1\" in \"a inet - - 1 - - x\"",
        ),
        (
            b"a inet n - n 10x - x\n",
            "invalid wakeup field \"10x\" in \"a inet n - n 10x - x\"",
        ),
        (
            b"a inet n - n 1?? - x\n",
            "invalid wakeup field \"1??\" in \"a inet n - n 1?? - x\"",
        ),
        (
            b"a inet n - n -- - x\n",
            "invalid wakeup field \"--\" in \"a inet n - n -- - x\"",
        ),
        (
            b"a inet n - n - 1x x\n",
            "invalid process_limit field \"1x\" in \"a inet n - n - 1x x\"",
        ),
        (
            b"a inet n - n - 1? x\n",
            "invalid process_limit field \"1?\" in \"a inet n - n - 1? x\"",
        ),
    ];
    for (input, want) in cases {
        let err = MasterCf::parse(input, "P").expect_err("hostile input");
        assert_eq!(err.to_string(), *want, "{input:?}");
    }
}

#[test]
fn accepted_columns() {
    let cf = parse(
        "a inet n y y 0? 007 s\nb unix - - - ? - s\nc fifo - - - -? 1 s\nd pass - - - 5 - s\n\
         e unix-dgram - - - - - s\n",
    );
    assert_eq!(cf.services.len(), 5);
    assert_eq!(
        show_entries(&cf, &[], false).expect("no patterns").text,
        "a          inet  n       y       y       0?      007     s\n\
         b          unix  -       -       -       ?       -       s\n\
         c          fifo  -       -       -       -?      1       s\n\
         d          pass  -       -       -       5       -       s\n\
         e          unix-dgram -  -       -       -       -       s\n"
    );
}

#[test]
fn args_and_overrides() {
    // (input, args after the command, overrides, -M line, warnings)
    let cases: &[(&str, &[&str], &[(&str, &str)], &str, &[&str])] = &[
        (
            "a inet n - n - - smtpd -o { name = value with  spaces }",
            &["-o", "name=value with  spaces"],
            &[("name", "value with  spaces")],
            "smtpd -o {name=value with  spaces}",
            &[],
        ),
        (
            "a inet n - n - - smtpd -o name = value",
            &["-o", "name", "=", "value"],
            &[],
            "smtpd -o name = value",
            &[],
        ),
        (
            "a inet n - n - - smtpd -oname=value -o{a=b} -o {c = d",
            &["-o", "name=value", "-o", "a=b", "-o", "c=d"],
            &[("name", "value"), ("a", "b"), ("c", "d")],
            "smtpd -o name=value -o a=b -o c=d",
            &["master.cf: missing '}' in \"{c = d\""],
        ),
        (
            "a unix - n n - - pipe -vo a=b -vox=y -- -o c=d",
            &["-v", "-o", "a=b", "-v", "-o", "x=y", "--", "-o", "c=d"],
            &[("a", "b"), ("x", "y")],
            "pipe -v -o a=b -v -o x=y -- -o c=d",
            &[],
        ),
        ("a unix - n n - - pipe -o", &["-o"], &[], "pipe -o", &[]),
        (
            "a unix - n n - - pipe -o -o x=y",
            &["-o", "-o", "x=y"],
            &[],
            "pipe -o -o x=y",
            &[],
        ),
        (
            "a unix - n n - - pipe - -o x=1",
            &["-", "-o", "x=1"],
            &[],
            "pipe - -o x=1",
            &[],
        ),
        (
            "a unix - n n - - pipe -v {x y} -o a=b",
            &["-v", "x y", "-o", "a=b"],
            &[],
            "pipe -v x y -o a=b",
            &[],
        ),
        (
            "a unix - n n - - pipe -verbose",
            &["-verb", "-o", "se"],
            &[],
            "pipe -verb -o se",
            &[],
        ),
        (
            "a unix - n n - - pipe -o {a} -o {} -o { }",
            &["-o", "a", "-o", "", "-o", ""],
            &[],
            "pipe -o a -o  -o ",
            &[
                "master.cf: missing '=' after attribute name: \"a\"",
                "master.cf: missing attribute name: \"\"",
                "master.cf: missing attribute name: \"\"",
            ],
        ),
        ("a inet n - n - - sm\0tpd -o x=1", &[], &[], "sm", &[]),
    ];
    for (input, args, overrides, line, warnings) in cases {
        let cf = parse(input);
        let svc = &cf.services[0];
        assert_eq!(svc.args, s(args), "{input}");
        let want: Vec<(String, String)> = overrides
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        assert_eq!(svc.overrides, want, "{input}");
        assert_eq!(&format_m(svc, false)[57..], format!("{line}\n"), "{input}");
        assert_eq!(cf.warnings, s(warnings), "{input}");
    }
}

#[test]
fn layout() {
    let long = "x".repeat(70);
    let cf = parse(&format!(
        "verylongservicename inet n - n - - smtpd\nb unix - - n - - {long} -o b=c\n"
    ));
    assert_eq!(
        format_m(&cf.services[0], false),
        "verylongservicename inet n -     n       -       -       smtpd\n"
    );
    let b = &cf.services[1];
    assert_eq!(
        format_f(b, Field::Command, ShowOptions::default()),
        format!("b/unix/command = \n    {long} -o b=c\n")
    );
    let hide_name = ShowOptions {
        hide_name: true,
        ..ShowOptions::default()
    };
    assert_eq!(
        format_f(b, Field::Command, hide_name),
        format!("{long} -o b=c\n")
    );
    let hide_value = ShowOptions {
        hide_value: true,
        ..ShowOptions::default()
    };
    assert_eq!(
        format_f(b, Field::ProcessLimit, hide_value),
        "b/unix/process_limit\n"
    );
    assert_eq!(format_p(b, "b", "c", hide_value), "b/unix/b\n");
    assert_eq!(format_p(b, "b", "  c  d ", hide_name), "c d\n");
    assert_eq!(format_p(b, "b", "", ShowOptions::default()), "b/unix/b =\n");
    assert_eq!(fields(b)[6], ("process_limit", "-".to_string()));
    assert_eq!(fields(b)[7], ("command", format!("{long} -o b=c")));
}

#[test]
fn selection() {
    let cf = parse("a inet n - n - - smtpd\na unix - - n - - smtp -o x=1\nb unix - - - - - b -v\n");
    let m = show_entries(&cf, &s(&["a", "*/unix", "c", "a/inet"]), false).expect("patterns");
    assert_eq!(m.text.lines().count(), 5);
    assert_eq!(m.warnings, ["unmatched request: \"c\""]);
    for bad in ["a/inet/x", "a*", "", "/a"] {
        assert_eq!(
            show_entries(&cf, &s(&[bad]), false),
            Err(PatternError::Entry),
            "{bad}"
        );
    }
    assert_eq!(
        show_entries(&cf, &s(&["a/", "*/*"]), false)
            .expect("ok")
            .text
            .lines()
            .count(),
        5
    );

    let f = show_fields(
        &cf,
        &s(&["a/inet/command", "*/*/chroot", "b/*/*", "x", "a//command"]),
        ShowOptions::default(),
    )
    .expect("patterns");
    assert!(
        f.text
            .starts_with("a/inet/command = smtpd\na/inet/chroot = n\na/unix/chroot = n\n")
    );
    assert_eq!(f.text.lines().count(), 3 + 1 + 8);
    assert_eq!(
        f.warnings,
        [
            "unmatched request: \"x\"",
            "unmatched request: \"a//command\""
        ]
    );
    assert_eq!(
        show_fields(&cf, &s(&["a/inet/Command"]), ShowOptions::default()),
        Err(PatternError::FieldName("Command".into()))
    );
    assert_eq!(
        PatternError::FieldName("bogus".into()).to_string(),
        "invalid service attribute name: \"bogus\""
    );
    assert_eq!(
        show_fields(&cf, &s(&["a/b/c/d"]), ShowOptions::default()),
        Err(PatternError::Field)
    );

    let p = show_params(
        &cf,
        &s(&["a/inet", "a", "*/*/x", "b/unix/x"]),
        ShowOptions::default(),
    )
    .expect("patterns");
    assert_eq!(p.text, "a/unix/x = 1\na/unix/x = 1\n");
    assert_eq!(
        p.warnings,
        [
            "unmatched request: \"a/inet\"",
            "unmatched request: \"b/unix/x\""
        ]
    );
    assert_eq!(
        show_params(&cf, &s(&["a*"]), ShowOptions::default()),
        Err(PatternError::Param)
    );
    assert_eq!(
        PatternError::Param.to_string(),
        "-P option requires service_name[/type[/parameter]]"
    );
}

#[test]
fn shared_param_tables() {
    // Postfix shares one -o table per name/type; an entry sees it once it exists.
    let cases: &[(&str, &str)] = &[
        (
            "a inet n - n - - s -o y=1\na inet n - n - - s\n",
            "a/inet/y = 1\na/inet/y = 1\n",
        ),
        (
            "a inet n - n - - s\na inet n - n - - s -o y=1\n",
            "a/inet/y = 1\n",
        ),
        (
            "a inet n - n - - s -o x=1\na inet n - n - - s -o x=2\n",
            "a/inet/x = 2\na/inet/x = 2\n",
        ),
        (
            "a inet n - n - - s -o y=1 -o y=2 -o b=0\n",
            "a/inet/b = 0\na/inet/y = 2\n",
        ),
    ];
    for (input, want) in cases {
        let got = show_params(&parse(input), &[], ShowOptions::default()).expect("no patterns");
        assert_eq!(got.text, *want, "{input}");
    }
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_errors() {
    // A private directory by hand: tempfile is not a dependency of this crate.
    let base = std::env::temp_dir().join(format!("tern-mastercf-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("mkdir");
    let dir = TempDir(base);
    let err = MasterCf::load(dir.path()).expect_err("missing");
    assert_eq!(
        err.to_string(),
        format!(
            "open {}/master.cf: No such file or directory",
            dir.path().display()
        )
    );
    std::fs::create_dir(dir.path().join("master.cf")).expect("mkdir");
    // A directory opens and reads as an empty table, as in Postfix.
    assert_eq!(MasterCf::load(dir.path()).expect("directory").services, []);
    std::fs::remove_dir(dir.path().join("master.cf")).expect("rmdir");
    std::fs::write(
        dir.path().join("master.cf"),
        "  x\nsmtp inet n - y - - smtpd\n",
    )
    .expect("write");
    let cf = MasterCf::load(dir.path()).expect("loads");
    assert_eq!(cf.services[0].line, 2);
    assert_eq!(
        cf.warnings,
        [format!(
            "{}/master.cf: logical line must not start with whitespace: \"  x\"",
            dir.path().display()
        )]
    );
}

#[test]
fn warnings_before_fatal() {
    let mut warnings = Vec::new();
    let err = MasterCf::parse_with(b" x\na inet n - n - - s -o {x\nb\n", "P", &mut warnings)
        .expect_err("bad");
    assert_eq!(err.to_string(), "file P: line 3: bad field count");
    assert_eq!(
        warnings,
        [
            "P: logical line must not start with whitespace: \" x\"",
            "master.cf: missing '}' in \"{x\"",
            "master.cf: missing '=' after attribute name: \"x\"",
        ]
    );
}

#[test]
fn long_line() {
    let arg = "y".repeat(200_000);
    let cf = parse(&format!("a unix - - n - - x {arg}\n"));
    assert_eq!(cf.services[0].args[0].len(), 200_000);
}

proptest::proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        if let Ok(cf) = MasterCf::parse(&bytes, "P") {
            let opts = ShowOptions { fold: true, ..ShowOptions::default() };
            let _ = show_entries(&cf, &[], true);
            let _ = show_fields(&cf, &[], opts);
            let _ = show_params(&cf, &[], opts);
        }
    }

    #[test]
    fn never_panics_on_entries(tail in "[-o{} =a-z\t\r\n#]{0,80}") {
        let text = format!("a unix - - n - - x {tail}\n");
        if let Ok(cf) = MasterCf::parse(text.as_bytes(), "P") {
            let _ = show_entries(&cf, &[], true);
            let _ = show_params(&cf, &[], ShowOptions::default());
        }
    }
}

/// Side by side with Debian's postconf on generated files (needs /usr/sbin/postconf, which
/// .ci/run installs; fails without it).
#[test]
fn differential() {
    use proptest::strategy::{Strategy, ValueTree};
    let line = proptest::string::string_regex(
        "[a-c]{1,3} (inet|unix|pass) [ny-] [ny-] [ny-] (-|1\\?|7) (-|0|12) \
         [a-z]{1,20}( (-o|-v|-vo|-ox=1|\\{ ?[a-z]{0,5} ?= ?[a-z ]{0,6}\\}|[a-z=]{1,30}|--|-)){0,8}\
         (\n  -o [a-z]{1,8}=[a-z,]{0,40})?\n",
    )
    .expect("regex");
    let file = proptest::collection::vec(line, 1..6);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let base = std::env::temp_dir().join(format!("tern-mastercf-diff-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("mkdir");
    let dir = TempDir(base);
    std::fs::write(dir.path().join("main.cf"), "").expect("main.cf");
    for _ in 0..200 {
        let text: String = file.new_tree(&mut runner).expect("tree").current().concat();
        std::fs::write(dir.path().join("master.cf"), &text).expect("master.cf");
        let cf = MasterCf::load(dir.path()).expect("generated files parse");
        for mode in ["-M", "-Mf", "-F", "-Ff", "-P", "-Pf"] {
            let out = std::process::Command::new("/usr/sbin/postconf")
                .arg("-c")
                .arg(dir.path())
                .arg(mode)
                .output()
                .expect("postconf runs");
            let fold = mode.ends_with('f');
            let opts = ShowOptions {
                fold,
                ..ShowOptions::default()
            };
            let ours = match &mode[1..2] {
                "M" => show_entries(&cf, &[], fold),
                "F" => show_fields(&cf, &[], opts),
                _ => show_params(&cf, &[], opts),
            }
            .expect("no patterns");
            assert_eq!(
                ours.text,
                String::from_utf8_lossy(&out.stdout),
                "{mode} on {text:?}"
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            let theirs: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.contains("unused parameter"))
                .filter_map(|l| l.strip_prefix("/usr/sbin/postconf: warning: "))
                .collect();
            assert_eq!(cf.warnings, theirs, "{mode} warnings on {text:?}");
        }
    }
}
