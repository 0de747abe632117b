//! Expansion tests. Expectations observed with Debian 12's postconf 3.7.11: main.cf holds
//! `smtpd_banner = TEXT` and the definitions, and `postconf -xh smtpd_banner` prints the
//! result, or the warnings then `fatal: macro processing error` (exit 1). postconf also scans
//! every value first, printing each syntax warning once more before; [`scan`] gives those.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn table(defs: &[(&str, &str)]) -> HashMap<String, String> {
    defs.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// (text, definitions, Ok(result) or Err(warnings))
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    Result<&'a str, &'a [&'a str]>,
);

#[test]
fn expand_table() {
    let cases: &[Case<'_>] = &[
        ("$a", &[("a", "1")], Ok("1")),
        ("${a}", &[("a", "1")], Ok("1")),
        ("$(a)", &[("a", "1")], Ok("1")),
        ("$$a", &[("a", "1")], Ok("$a")),
        ("$a-b", &[("a", "1")], Ok("1-b")),
        ("x${undef}y", &[], Ok("xy")),
        ("${undef?x}", &[], Ok("")),
        ("${undef:x}", &[], Ok("x")),
        ("${a?x}", &[("a", "")], Ok("")),
        ("${a:x}", &[("a", "")], Ok("x")),
        ("${a?x}", &[("a", "1")], Ok("x")),
        ("${a:x}", &[("a", "1")], Ok("")),
        ("${ a }", &[("a", "1")], Ok("1")),
        ("${ a ?x}", &[("a", "1")], Ok("x")),
        // postconf prints `y x y` for `y${a?{ x }}y`; it trims what it prints.
        ("${a?{ x }}", &[("a", "1")], Ok(" x ")),
        ("y${{1}==level{1}? {x} : {  y  } }y", &[], Ok("yxy")),
        ("${a?{x} }", &[("a", "1")], Ok("x")),
        ("${a?{x}:{y}}", &[("a", "1")], Ok("x")),
        ("${a?{x}:{y}}", &[("a", "")], Ok("y")),
        ("${a?{x} : {y}}", &[("a", "")], Ok("y")),
        ("${a?x:y}", &[("a", "1")], Ok("x:y")),
        ("${a?{x}:y}", &[("a", "")], Ok("y")),
        ("${a?{x}:y}", &[("a", "1")], Ok("x")),
        ("${a?{x}}}", &[("a", "1")], Ok("x}")),
        ("${a?$b}", &[("a", "1"), ("b", "2")], Ok("2")),
        ("${a:$b}", &[("a", "1"), ("b", "2")], Ok("")),
        (
            "${a?{$b}:{$c}}",
            &[("a", "1"), ("b", "2"), ("c", "3")],
            Ok("2"),
        ),
        ("${a?$a}", &[("a", "1")], Ok("1")),
        ("${ }", &[], Ok("")),
        ("${:x}", &[], Ok("x")),
        ("$(a)", &[("a", "${{1}==level{1}}")], Ok("true")),
        ("${{$a} == {1} ? {x} : {y}}", &[("a", "1")], Ok("x")),
        ("${{$a} == {01} ? {x} : {y}}", &[("a", "1")], Ok("x")),
        ("${{$a} < {10} ? {x} : {y}}", &[("a", "9")], Ok("x")),
        ("${{a} < {b}?{x}:{y}}", &[], Ok("x")),
        ("${{9} < {10a}?{x}:{y}}", &[], Ok("y")),
        ("${{-1} < {1}?{x}:{y}}", &[], Ok("x")),
        ("${{} == {}?{x}:{y}}", &[], Ok("x")),
        ("${{1} != {2}}", &[], Ok("true")),
        ("${{1} == {2}}", &[], Ok("")),
        ("${{1} == {2}}x", &[], Ok("x")),
        ("${{1} == {1} ? x}", &[], Ok(" x")),
        ("${{1} == {1} : {x}}", &[], Ok("")),
        ("${{1}=={1}?{x}}", &[], Ok("x")),
        ("${ {1} == {1} ? {x}}", &[], Ok("x")),
        ("${{1} ==level {1}}", &[], Ok("true")),
        ("${{3.6} <level {3.10} ? {x} : {y}}", &[], Ok("x")),
        ("${{3.6} <=level {3.6.0} ? {x} : {y}}", &[], Ok("x")),
        ("${{2} <level {3.6} ? {x} : {y}}", &[], Ok("x")),
        ("${{3.6.1} >level {3.6} ? {x} : {y}}", &[], Ok("x")),
        ("${{3} ==level {3.0} ? {x} : {y}}", &[], Ok("x")),
        ("${{ 3} ==level {+3.0} ? {x} : {y}}", &[], Ok("x")),
        ("x$", &[], Err(&["empty macro name: \"x$\""])),
        (
            "${a",
            &[("a", "1")],
            Err(&["truncated macro reference: \"${a\""]),
        ),
        ("${}", &[], Err(&["empty macro name: \"${}\""])),
        (
            "${a b}",
            &[("a", "1")],
            Err(&["attribute name syntax error at: \"...a>>> b\""]),
        ),
        (
            "${a?{x}junk}",
            &[("a", "1")],
            Err(&["\":\" expected at: \"...x}>>>junk\""]),
        ),
        (
            "${a:{x}junk}",
            &[("a", "")],
            Err(&["unexpected input at: \"...x}>>>junk\""]),
        ),
        (
            "${a?{{x}}",
            &[("a", "1")],
            Err(&["truncated macro reference: \"${a?{{x}}\""]),
        ),
        (
            "${a?{x}",
            &[("a", "1")],
            Err(&["truncated macro reference: \"${a?{x}\""]),
        ),
        (
            "$({a)",
            &[],
            Err(&["unbalanced {} in attribute expression: \"{a\""]),
        ),
        (
            "${a?{x}:{$(b}}",
            &[("a", "")],
            Err(&["truncated macro reference: \"$(b\""]),
        ),
        (
            "${{1} = {2}}",
            &[],
            Err(&[
                "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" \
                   expected at: \"...1}>>>= {2}\"",
            ]),
        ),
        (
            "${{1}}",
            &[],
            Err(&[
                "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" \
                   expected at: \"...1}>>>\"",
            ]),
        ),
        (
            "${{1} == 2}",
            &[],
            Err(&["\"{expression}\" expected at: \"...{1} ==>>> 2\""]),
        ),
        (
            "${{1} ==}",
            &[],
            Err(&["\"{expression}\" expected at: \"...{1} ==>>>\""]),
        ),
        (
            "${{1} == {1} x}",
            &[],
            Err(&["\"?\" or \":\" expected at: \"...}>>>x\""]),
        ),
        (
            "${{1} == {1} ? {x} junk}",
            &[],
            Err(&["\":\" expected at: \"...x}>>>junk\""]),
        ),
        (
            "${{1} == {1}?{x}:{y}:{z}}",
            &[],
            Err(&["unexpected input at: \"...y}>>>:{z}\""]),
        ),
        (
            "${{3.x} >level {3.6} ? {x} : {y}}",
            &[],
            Err(&["malformed compatibility level syntax: \"3.x\""]),
        ),
        (
            "${{} >level {3.6} ? {x} : {y}}",
            &[],
            Err(&["malformed compatibility level syntax: \"\""]),
        ),
        (
            "${{3.6} >lvl {3.6} ? {x} : {y}}",
            &[],
            Err(&["bad operator suffix at: \"...>>>>lvl\""]),
        ),
        (
            "$a",
            &[("a", "$a")],
            Err(&["unreasonable macro call nesting: \"a\""]),
        ),
        (
            "$a",
            &[("a", "$b"), ("b", "$a")],
            Err(&["unreasonable macro call nesting: \"b\""]),
        ),
        (
            "x $a y",
            &[("a", "$a")],
            Err(&["unreasonable macro call nesting: \"a\""]),
        ),
        (
            "$a",
            &[("a", "$a x")],
            Err(&["unreasonable macro call nesting: \"a\""]),
        ),
        (
            "$a",
            &[("a", "x $a")],
            Err(&[
                "unreasonable macro call nesting: \"x \"",
                "unreasonable macro call nesting: \"a\"",
            ]),
        ),
        (
            "$a $a",
            &[("a", "$a")],
            Err(&["unreasonable macro call nesting: \"a\""]),
        ),
    ];
    for (text, defs, want) in cases {
        let got = expand(text, &table(defs), Mode::Recursive);
        match (want, got) {
            (Ok(want), Ok(got)) => assert_eq!(got.text, *want, "{text} with {defs:?}"),
            (Err(want), Err(err)) => {
                assert_eq!(err.to_string(), "macro processing error", "{text}");
                assert_eq!(err.warnings(), *want, "{text} with {defs:?}");
            }
            (want, got) => panic!("{text} with {defs:?}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn repeated_nesting_warnings() {
    // Debian: `a = $a $a` gives 101 warnings for " " and 102 for "a", then the fatal.
    let err = expand("$a", &table(&[("a", "$a $a")]), Mode::Recursive).expect_err("loops");
    let count = |text: &str| err.warnings().iter().filter(|w| w.ends_with(text)).count();
    assert_eq!(count("\" \""), 101);
    assert_eq!(count("\"a\""), 102);
}

#[test]
fn bad_conversion_is_fatal_at_once() {
    let err = expand(
        "${{99999999999999999999} == {1} ? {x} : {y}}",
        &table(&[]),
        Mode::Recursive,
    )
    .expect_err("fatal");
    assert_eq!(
        err.to_string(),
        "mac_exp_eval: bad conversion: 99999999999999999999"
    );
    assert!(err.warnings().is_empty());
}

#[test]
fn comparison_recursion_is_stopped() {
    // Postfix 3.7 dies of SIGSEGV here; we report runaway nesting.
    let err = expand("$a", &table(&[("a", "${{$a} == {x}}")]), Mode::Recursive).expect_err("loop");
    assert_eq!(err.to_string(), "macro processing error");
    assert!(err.warnings()[0].starts_with("unreasonable macro call nesting: "));
}

/// Comparisons that expand the value twice at every level did work exponential in
/// MAX_DEPTH and never ended (the expand fuzz target; fuzz/corpus/expand/
/// hang-comparison-fanout). Now the step budget ends them with the nesting warning.
#[test]
fn comparison_fan_out_is_stopped() {
    for value in ["${{$a} == {$a}}", "${{$a $a} != {x} ? {$a} : {$a}}"] {
        let started = std::time::Instant::now();
        let err = expand("$a", &table(&[("a", value)]), Mode::Recursive).expect_err(value);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{value}"
        );
        assert_eq!(err.to_string(), "macro processing error");
        assert!(err.warnings()[0].starts_with("unreasonable macro call nesting: "));
    }
}

#[test]
fn undefined_and_once() {
    let got = expand("$u ${v?x} ${u}", &table(&[]), Mode::Recursive).expect("ok");
    assert_eq!(got.undefined, ["u", "v", "u"]);
    let got = expand("$a", &table(&[("a", "$b"), ("b", "2")]), Mode::Once).expect("ok");
    assert_eq!(got.text, "$b");
}

#[test]
fn scan_table() {
    // (text, names, warnings)
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("$a ${b} $(c) $$d", &["a", "b", "c"], &[]),
        ("${a?{$b}:{$c}} $a", &["a", "b", "c"], &[]),
        (
            "${{$x} ==level {$y} ? {$z} : {$w}}",
            &["x", "y", "z", "w"],
            &[],
        ),
        ("${a?x:$b}", &["a", "b"], &[]),
        (
            "${a b}",
            &[],
            &["attribute name syntax error at: \"...a>>> b\""],
        ),
        ("${{3.x} >level {3.6}}", &[], &[]),
        ("$a ${b", &["a"], &["truncated macro reference: \"$a ${b\""]),
    ];
    for (text, names, warnings) in cases {
        let got = scan(text);
        assert_eq!(got.names, *names, "{text}");
        assert_eq!(got.warnings, *warnings, "{text}");
        assert_eq!(referenced_names(text), *names, "{text}");
    }
}

proptest! {
    #[test]
    fn expand_never_panics(text in "[${}()?:=<>! a-c0-9l]{0,40}", value in "[${}()?:=<>! a-c0-9]{0,20}") {
        let defs = table(&[("a", &value), ("b", "$a"), ("c", "")]);
        let _ = expand(&text, &defs, Mode::Recursive);
        let _ = expand(&text, &defs, Mode::Once);
        let _ = scan(&text);
    }
}
