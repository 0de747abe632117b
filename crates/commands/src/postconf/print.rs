//! postconf's output lines: whitespace between words normalised to one space, and with `-f`
//! folded before column 80 with a four-space indent, as Postfix's pcf_print_line() does.

/// Column before which `-f` folds.
const LINE_LIMIT: usize = 80;
const INDENT: &str = "    ";

/// Formats one output line (with its newline): the words of `text`, separated by single
/// spaces, or folded when `fold` is set.
pub fn line(text: &str, fold: bool) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let mut line_len = 0;
    for word in text
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        if line_len > 0 {
            if !fold || line_len + word.len() < LINE_LIMIT {
                out.push(' ');
                line_len += 1;
            } else {
                out.push('\n');
                out.push_str(INDENT);
                line_len = INDENT.len();
            }
        }
        out.push_str(word);
        line_len += word.len();
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_folds() {
        assert_eq!(line("a  =\t b\n c", false), "a = b c\n");
        assert_eq!(line("name =", false), "name =\n");
        assert_eq!(line("", false), "\n");
        let long = format!("name = {}", ["word"; 20].join(" "));
        let folded = line(&long, true);
        assert!(folded.lines().all(|l| l.len() < 80), "{folded}");
        assert!(folded.lines().skip(1).all(|l| l.starts_with("    ")));
        assert_eq!(folded.split_whitespace().count(), 22);
    }
}
