//! POSIX getopt as Postfix's commands use it (glibc with a leading `+`): options end at the
//! first operand or at `--`; grouped flags (`-nx`); an argument glued (`-c/dir`) or separate.

/// One parsed option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opt {
    Flag(char),
    WithArg(char, String),
}

/// Why the command line did not parse, with glibc's message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetoptError {
    Invalid(char),
    MissingArgument(char),
}

impl std::fmt::Display for GetoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetoptError::Invalid(c) => write!(f, "invalid option -- '{c}'"),
            GetoptError::MissingArgument(c) => write!(f, "option requires an argument -- '{c}'"),
        }
    }
}

/// Parses `args` (without argv\[0\]) against `spec` (`"c:dn"`: a letter followed by `:` takes
/// an argument). Returns the options in order and the operands.
pub fn getopt(args: &[String], spec: &str) -> Result<(Vec<Opt>, Vec<String>), GetoptError> {
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        let chars: Vec<char> = arg.chars().skip(1).collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            let Some(pos) = spec.find(c).filter(|_| c != ':') else {
                return Err(GetoptError::Invalid(c));
            };
            if spec[pos + c.len_utf8()..].starts_with(':') {
                let rest: String = chars[j + 1..].iter().collect();
                if !rest.is_empty() {
                    opts.push(Opt::WithArg(c, rest));
                } else if i + 1 < args.len() {
                    i += 1;
                    opts.push(Opt::WithArg(c, args[i].clone()));
                } else {
                    return Err(GetoptError::MissingArgument(c));
                }
                break;
            }
            opts.push(Opt::Flag(c));
            j += 1;
        }
        i += 1;
    }
    Ok((opts, args[i..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    type Case<'a> = (&'a [&'a str], Result<(Vec<Opt>, Vec<&'a str>), GetoptError>);

    #[test]
    fn parses_like_posix_getopt() {
        let cases: &[Case<'_>] = &[
            (
                &["-nx", "a"],
                Ok((vec![Opt::Flag('n'), Opt::Flag('x')], vec!["a"])),
            ),
            (
                &["-c", "/d", "-n"],
                Ok((vec![Opt::WithArg('c', "/d".into()), Opt::Flag('n')], vec![])),
            ),
            (
                &["-c/d"],
                Ok((vec![Opt::WithArg('c', "/d".into())], vec![])),
            ),
            (&["a", "-n"], Ok((vec![], vec!["a", "-n"]))),
            (&["--", "-n"], Ok((vec![], vec!["-n"]))),
            (&["-Z"], Err(GetoptError::Invalid('Z'))),
            (&["-c"], Err(GetoptError::MissingArgument('c'))),
            (&["-#", "x"], Ok((vec![Opt::Flag('#')], vec!["x"]))),
        ];
        for (args, want) in cases {
            let got = getopt(&s(args), "c:nx#");
            let want = want.clone().map(|(o, rest)| (o, s(&rest)));
            assert_eq!(got, want, "{args:?}");
        }
    }
}
