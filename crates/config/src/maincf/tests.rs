//! main.cf lexer and edit tests. Every expectation was observed with Debian 12's
//! `/usr/sbin/postconf` 3.7.11 (`-n`, `-e`, `-X`, `-#` on a copy of the input, with an old
//! mtime so that the file is read once).

use proptest::prelude::*;

use super::*;

type LexCase<'a> = (&'a [u8], &'a [(&'a str, &'a str, usize)], &'a [&'a str]);
type EditCase<'a> = (&'a [u8], EditOp, &'a [u8], &'a [&'a str]);

fn defs(cf: &MainCf) -> Vec<(String, String, usize)> {
    cf.definitions
        .iter()
        .map(|d| (d.name.clone(), d.value.clone(), d.line))
        .collect()
}

#[test]
fn lexer_table() {
    // (input, [(name, value, line)], warnings)
    let cases: &[LexCase<'_>] = &[
        (b"a = 1\n", &[("a", "1", 1)], &[]),
        (b"a=1", &[("a", "1", 1)], &[]),
        (b"# c\na = 1\n# mid\n  cont\n", &[("a", "1  cont", 2)], &[]),
        (b"a = 1\n\n  cont\n", &[("a", "1  cont", 1)], &[]),
        (b"a=1\n  # not comment?\n  x\n", &[("a", "1  x", 1)], &[]),
        (b"a = 1   \n", &[("a", "1", 1)], &[]),
        (b"a = 1\r\nb = 2\r\n", &[("a", "1", 1), ("b", "2", 2)], &[]),
        (b"a\r = 1\r\n", &[("a", "1", 1)], &[]),
        (b"\r\na=1", &[("a", "1", 2)], &[]),
        (b"a = 1\n\x0c b\n", &[("a", "1\x0c b", 1)], &[]),
        (b"a==b\n", &[("a", "=b", 1)], &[]),
        (b"a=\n", &[("a", "", 1)], &[]),
        (b" \n#\n \t\nabc = 1\n", &[("abc", "1", 4)], &[]),
        (b"a = x\0y\n", &[("a", "x", 1)], &[]),
        (b"a = 1\n \0x\n", &[("a", "1", 1)], &[]),
        (
            b"  first\na=1\n",
            &[("a", "1", 2)],
            &["M: logical line must not start with whitespace: \"  first\""],
        ),
        (
            b"#c\n  cont\na=1\n",
            &[("a", "1", 3)],
            &["M: logical line must not start with whitespace: \"  cont\""],
        ),
        (
            b" a\n b\nx=1\n",
            &[("x", "1", 3)],
            &["M: logical line must not start with whitespace: \" a b\""],
        ),
        (
            b" aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            &[],
            &["M: logical line must not start with whitespace: \" aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""],
        ),
        (
            b" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            &[],
            &["M: logical line must not start with whitespace: \
                 \" aaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\""],
        ),
        (
            b"a=1\na=2\na=1\n",
            &[("a", "1", 1), ("a", "2", 2), ("a", "1", 3)],
            &[
                "M, line 2: overriding earlier entry: a=1",
                "M, line 3: overriding earlier entry: a=2",
            ],
        ),
        (b"a=1\na=1\n", &[("a", "1", 1), ("a", "1", 2)], &[]),
    ];
    for (input, want, warnings) in cases {
        let cf = MainCf::parse(input, "M").unwrap_or_else(|e| panic!("{input:?}: {e}"));
        let want: Vec<_> = want
            .iter()
            .map(|(n, v, l)| (n.to_string(), v.to_string(), *l))
            .collect();
        assert_eq!(defs(&cf), want, "input {input:?}");
        assert_eq!(cf.warnings, *warnings, "input {input:?}");
        let last = cf.definitions.last().map(|d| d.value.as_str());
        assert_eq!(cf.definitions.last().and_then(|d| cf.get(&d.name)), last);
    }
}

#[test]
fn lexer_fatal_table() {
    // (input, Display text)
    let cases: &[(&[u8], &str)] = &[
        (
            b"noequals\n",
            "M, line 1: missing '=' after attribute name: \"noequals\"",
        ),
        (b"= v\n", "M, line 1: missing attribute name: \"= v\""),
        (
            b"a b = 1\n",
            "M, line 1: missing '=' after attribute name: \"a b = 1\"",
        ),
        (
            b"a\0 = 1\n",
            "M, line 1: missing '=' after attribute name: \"a\"",
        ),
        (b"\0a = 1\n", "M, line 1: missing attribute name: \"\""),
        (b"a=1\n\0\n", "M, line 2: missing attribute name: \"\""),
        (b"a=1\n\0", "M, line 2: missing attribute name: \"\""),
        (
            b"a\n=1\n",
            "M, line 1: missing '=' after attribute name: \"a\"",
        ),
        (
            b"a=1\r\n\r\nb\r\n",
            "M, line 3: missing '=' after attribute name: \"b\r\"",
        ),
    ];
    for (input, want) in cases {
        let err = MainCf::parse(input, "M").expect_err("must fail");
        assert_eq!(err.to_string(), *want, "input {input:?}");
    }
    // Warnings printed before the fatal error travel with it.
    let err = MainCf::parse(b" x\nbad\n", "M").expect_err("must fail");
    let MainCfError::MissingEquals { warnings, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        warnings,
        ["M: logical line must not start with whitespace: \" x\""]
    );
}

#[test]
fn load_messages() {
    let dir = std::env::temp_dir().join(format!("tern-maincf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let shown = dir.display().to_string();
    let err = MainCf::load(&dir).expect_err("no main.cf");
    assert_eq!(
        err.to_string(),
        format!("open {shown}/main.cf: No such file or directory")
    );
    std::fs::create_dir(dir.join("main.cf")).expect("mkdir");
    let err = MainCf::load(&dir).expect_err("directory");
    assert_eq!(
        err.to_string(),
        format!("read {shown}/main.cf: Is a directory")
    );
    std::fs::remove_dir(dir.join("main.cf")).expect("rmdir");
    std::fs::write(
        dir.join("main.cf"),
        "config_directory = /etc/postfix\nb=1\n",
    )
    .expect("write");
    let cf = MainCf::load(&dir).expect("loads");
    assert_eq!(
        cf.warnings,
        [format!(
            "{shown}/main.cf, line 1: overriding earlier entry: config_directory={shown}"
        )]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn set(pairs: &[(&str, &str)]) -> EditOp {
    EditOp::Set(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

#[test]
fn edit_table() {
    // (input, op, output, warnings)
    let cases: Vec<EditCase<'_>> = vec![
        (
            b"a = 1\n  cont\nb = 2\n",
            set(&[("a", "new")]),
            b"a = new\nb = 2\n",
            &[],
        ),
        (
            b"a = 1\n#c\n  cont\nb = 2\n",
            set(&[("a", "new")]),
            b"a = new\n#c\nb = 2\n",
            &[],
        ),
        (
            b"a = 1\n\n  cont\nb = 2\n",
            set(&[("a", "new")]),
            b"a = new\n\nb = 2\n",
            &[],
        ),
        (
            b"a = 1\nb = 2\na = 3\n  x\n",
            set(&[("a", "new")]),
            b"a = new\nb = 2\na = new\n",
            &["M: multiple entries for \"a\""],
        ),
        (
            b"a = 1\nb = 2\na = 3\na=4\n",
            set(&[("a", "new")]),
            b"a = new\nb = 2\na = new\na = new\n",
            &["M: multiple entries for \"a\""],
        ),
        (b"a = 1", set(&[("b", "2")]), b"a = 1b = 2\n", &[]),
        (b"a = 1\n", set(&[("b", "2")]), b"a = 1\nb = 2\n", &[]),
        (b"", set(&[("b", "2")]), b"b = 2\n", &[]),
        (b"#x", set(&[("b", "2")]), b"#xb = 2\n", &[]),
        (
            b"a = 1\r\nb = 2\r\n",
            set(&[("a", "x")]),
            b"a = x\nb = 2\r\n",
            &[],
        ),
        (
            b"a = 1\r\nb = 2\r\n",
            set(&[("c", "x")]),
            b"a = 1\r\nb = 2\r\nc = x\n",
            &[],
        ),
        (b"a = 1\n", set(&[("a", "x  y")]), b"a = x  y\n", &[]),
        (b"a = 1\n", set(&[("a", "")]), b"a = \n", &[]),
        (
            b"  cont\na = 1\n",
            set(&[("a", "x")]),
            b"  cont\na = x\n",
            &[],
        ),
        (
            b"a = x\0y\nb = 2\n",
            set(&[("c", "1")]),
            b"a = xb = 2\nc = 1\n",
            &[],
        ),
        (
            b"a = x\0y\nb = 2\n",
            set(&[("a", "1")]),
            b"a = 1\nb = 2\n",
            &[],
        ),
        (b"a\t= 1\n", set(&[("a", "2")]), b"a = 2\n", &[]),
        (b"ab = 1\n", set(&[("a", "2")]), b"ab = 1\na = 2\n", &[]),
        (
            b"a = 1\n  cont\nb = 2\n",
            EditOp::Remove(names(&["a"])),
            b"b = 2\n",
            &[],
        ),
        (
            b"a = 1\n#c\n  cont\nb = 2\n",
            EditOp::Remove(names(&["a"])),
            b"#c\nb = 2\n",
            &[],
        ),
        (
            b"a = 1\nb = 2\na = 3\n  x\n",
            EditOp::Remove(names(&["a"])),
            b"b = 2\n",
            &["M: multiple entries for \"a\""],
        ),
        (
            b"a = 1\nb = 2\n",
            EditOp::Remove(names(&["c"])),
            b"a = 1\nb = 2\n",
            &[],
        ),
        (b"a = 1", EditOp::Remove(names(&["a"])), b"", &[]),
        (
            b"a = 1\r\nb = 2\r\n",
            EditOp::Remove(names(&["a"])),
            b"b = 2\r\n",
            &[],
        ),
        (
            b"  cont\na = 1\n",
            EditOp::Remove(names(&["cont"])),
            b"  cont\na = 1\n",
            &[],
        ),
        (b"a=1\n", EditOp::Remove(names(&["a  "])), b"a=1\n", &[]),
        (b"a b=1\n", EditOp::Remove(names(&["a"])), b"", &[]),
        (
            b"a=1\n\0b=2\nc=3\n",
            EditOp::Remove(names(&["a"])),
            b"c=3\n",
            &[],
        ),
        (
            b"a=1\n  \0b=2\nc=3\n",
            EditOp::Remove(names(&["c"])),
            b"a=1\n  ",
            &[],
        ),
        (
            b"a = 1\n  cont\n#c\n\n  c2\nb = 2\n",
            EditOp::CommentOut(names(&["a"])),
            b"#a = 1\n#  cont\n#c\n\n#  c2\nb = 2\n",
            &[],
        ),
        (
            b"a = 1\nb = 2\na = 3\n  x\n",
            EditOp::CommentOut(names(&["a"])),
            b"#a = 1\nb = 2\n#a = 3\n#  x\n",
            &["M: multiple entries for \"a\""],
        ),
        (
            b"a = 1\r\n\tc\r\nb = 2\r\n",
            EditOp::CommentOut(names(&["a"])),
            b"#a = 1\r\n#\tc\r\nb = 2\r\n",
            &[],
        ),
        (b"a = 1", EditOp::CommentOut(names(&["a"])), b"#a = 1", &[]),
        (
            b"a = 1\n",
            EditOp::CommentOut(names(&["c"])),
            b"a = 1\n",
            &[],
        ),
        (
            b"a = 1\n",
            EditOp::CommentOut(names(&["a", "b"])),
            b"#a = 1\n",
            &[],
        ),
        (
            b"a=1\n  \0b=2\nc=3\n",
            EditOp::CommentOut(names(&["a"])),
            b"#a=1\n  c=3\n",
            &[],
        ),
    ];
    for (input, op, want, warnings) in cases {
        let got = edit_main(input, &op, "M");
        assert_eq!(
            String::from_utf8_lossy(&got.text),
            String::from_utf8_lossy(want),
            "input {input:?} op {op:?}"
        );
        assert_eq!(got.warnings, warnings, "input {input:?} op {op:?}");
    }
}

#[test]
fn edit_args_table() {
    let args = |list: &[&str]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    let (op, warnings) =
        parse_edit_args(true, false, &args(&["  a  =  1  ", "  b=2"])).expect("ok");
    assert_eq!(op, set(&[("a", "1"), ("b", "2")]));
    assert!(warnings.is_empty());
    let (op, warnings) = parse_edit_args(true, false, &args(&["a=x", "a=y"])).expect("ok");
    assert_eq!(op, set(&[("a", "y")]));
    assert_eq!(warnings, ["ignoring earlier request: 'a = x'"]);
    let (op, _) = parse_edit_args(false, false, &args(&["  a"])).expect("ok");
    assert_eq!(op, EditOp::Remove(names(&["a"])));
    let (op, _) = parse_edit_args(false, true, &args(&["a  "])).expect("ok");
    assert_eq!(op, EditOp::CommentOut(names(&["a  "])));
    // (set?, argument, fatal text)
    let fatal: &[(bool, &str, &str)] = &[
        (true, "a", "missing '=' after attribute name: \"a\""),
        (true, "=a", "missing attribute name: \"=a\""),
        (true, "a b=1", "missing '=' after attribute name: \"a b=1\""),
        (true, "#a=1", "-e, -X, or -# accepts no comment input"),
        (
            true,
            "a=1\nb=2",
            "-e, -X, or -# accepts no multi-line input",
        ),
        (false, "", "-X or -# requires non-blank parameter names"),
        (false, "  ", "-X or -# requires non-blank parameter names"),
        (
            false,
            "a=1",
            "-X or -# requires parameter names without value",
        ),
    ];
    for (is_set, arg, want) in fatal {
        let err = parse_edit_args(*is_set, false, &args(&[arg])).expect_err("must fail");
        assert_eq!(err.to_string(), *want, "arg {arg:?}");
    }
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,8}"
}

fn value_strategy() -> impl Strategy<Value = String> {
    // Values as postconf -e can write them: no newline, no NUL, no edge blanks.
    "[!-~]([ -~]{0,20}[!-~])?|"
}

proptest! {
    #[test]
    fn parse_never_panics(text in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = MainCf::parse(&text, "M");
    }

    #[test]
    fn parse_never_panics_on_line_soup(
        lines in proptest::collection::vec("[ \t#=a-c\r\0]{0,6}", 0..12)
    ) {
        let text = lines.join("\n");
        let _ = MainCf::parse(text.as_bytes(), "M");
        let _ = edit_main(text.as_bytes(), &set(&[("a", "1")]), "M");
    }

    #[test]
    fn set_then_parse_gives_values(
        base in proptest::collection::vec((name_strategy(), value_strategy()), 0..6),
        edits in proptest::collection::vec((name_strategy(), value_strategy()), 1..4),
    ) {
        let text: String =
            base.iter().map(|(n, v)| [n.as_str(), " = ", v, "\n    more\n# note\n"].concat()).collect();
        let out = edit_set(text.as_bytes(), &edits);
        let cf = MainCf::parse(&out, "M").expect("parses");
        for (n, _) in &edits {
            let want = edits.iter().rev().find(|(m, _)| m == n).map(|(_, v)| v.as_str());
            prop_assert_eq!(cf.get(n), want);
        }
        // Names not edited keep their definitions and their lines byte for byte.
        for (n, v) in &base {
            if !edits.iter().any(|(m, _)| m == n) {
                let line = format!("{n} = {v}\n    more\n");
                prop_assert!(String::from_utf8_lossy(&out).contains(&line));
            }
        }
        let removed = edit_remove(&out, &edits.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        let cf = MainCf::parse(&removed, "M").expect("parses");
        for (n, _) in &edits {
            prop_assert!(cf.get(n).is_none());
        }
    }

    #[test]
    fn untouched_lines_stay_identical(
        lines in proptest::collection::vec("[a-z]{1,3} ?= ?[ -~]{0,10}|#[ -~]{0,10}|[ \t]{1,2}[ -~]{0,8}|", 0..12),
        crlf in any::<bool>(),
    ) {
        let sep = if crlf { "\r\n" } else { "\n" };
        let text = lines.join(sep);
        // A name that cannot occur in the text: every line must come through unchanged.
        let out = edit_main(text.as_bytes(), &EditOp::Remove(names(&["zzzz9"])), "M");
        prop_assert_eq!(&out.text, text.as_bytes());
        let out = edit_main(text.as_bytes(), &EditOp::CommentOut(names(&["zzzz9"])), "M");
        prop_assert_eq!(&out.text, text.as_bytes());
        let out = edit_set(text.as_bytes(), &[("zzzz9".to_string(), "v".to_string())]);
        let mut want = text.clone().into_bytes();
        want.extend_from_slice(b"zzzz9 = v\n");
        prop_assert_eq!(out, want);
    }
}
