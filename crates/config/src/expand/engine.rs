//! The expansion engine: a tokenizer that splits text into literal runs and `$` references
//! (Postfix's mac_parse), and the evaluator of each reference (mac_expand's callback).
//!
//! Works on bytes, as Postfix does on C strings (a NUL ends a text). The order of warnings and
//! the points where expansion stops follow Postfix 3.7 exactly, quirks included; see the
//! module doc of [`super`].

use super::{Lookup, MAX_DEPTH, MAX_STEPS, level};
use crate::maincf::is_space;

/// A syntax error was reported (Postfix's MAC_PARSE_ERROR).
pub(super) const ERROR: u32 = 1;
/// An undefined name was met (MAC_PARSE_UNDEF).
pub(super) const UNDEF: u32 = 2;

/// Nesting level past which the callback warns (Postfix: `level++ > 100`).
const NESTING_LIMIT: u32 = 100;

/// Operator characters taken together for the diagnostic.
const OP_CHARS: &[u8] = b"<>!=?+-*/~&|%";

/// A fatal error that ends everything at once.
#[derive(Debug)]
pub(super) enum Abort {
    /// `mac_exp_eval: bad conversion: N`.
    BadConversion(String),
}

/// One mac_expand invocation's state: its output, status and nesting level.
struct Frame {
    result: Vec<u8>,
    status: u32,
    level: u32,
}

/// What a token from the tokenizer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal,
    Expr,
}

#[derive(Clone, Copy)]
enum Relop {
    Eq,
    Ne,
    Lt,
    Le,
    Ge,
    Gt,
}

pub(super) struct Engine<'a> {
    lookup: &'a dyn Lookup,
    recurse: bool,
    scan: bool,
    depth: usize,
    /// Tokens evaluated so far, against [`MAX_STEPS`].
    steps: usize,
    pub(super) warnings: Vec<String>,
    pub(super) undefined: Vec<String>,
    pub(super) looked_up: Vec<String>,
}

impl<'a> Engine<'a> {
    pub(super) fn new(lookup: &'a dyn Lookup, recurse: bool, scan: bool) -> Engine<'a> {
        Engine {
            lookup,
            recurse,
            scan,
            depth: 0,
            steps: 0,
            warnings: Vec::new(),
            undefined: Vec::new(),
            looked_up: Vec::new(),
        }
    }

    /// A fresh mac_expand: new output, status and nesting level.
    pub(super) fn expand_top(&mut self, text: &[u8]) -> Result<(Vec<u8>, u32), Abort> {
        let mut frame = Frame {
            result: Vec::new(),
            status: 0,
            level: 0,
        };
        let status = self.parse(&mut frame, text)?;
        Ok((frame.result, status))
    }

    fn warn(&mut self, frame: &mut Frame, text: String) -> u32 {
        self.warnings.push(text);
        frame.status |= ERROR;
        frame.status
    }

    /// Splits `value` into literal text and references, handing each to [`Self::callback`].
    fn parse(&mut self, frame: &mut Frame, value: &[u8]) -> Result<u32, Abort> {
        let value = crate::maincf::until_nul(value);
        self.depth += 1;
        let outcome = self.parse_inner(frame, value);
        self.depth -= 1;
        outcome
    }

    fn parse_inner(&mut self, frame: &mut Frame, value: &[u8]) -> Result<u32, Abort> {
        let mut status = 0;
        let mut buf: Vec<u8> = Vec::new();
        let mut vp = 0;
        while vp < value.len() {
            if value[vp] != b'$' {
                buf.push(value[vp]);
                vp += 1;
                continue;
            }
            if value.get(vp + 1) == Some(&b'$') {
                buf.push(b'$');
                vp += 2;
                continue;
            }
            if !buf.is_empty() {
                status |= self.callback(frame, Token::Literal, &buf)?;
                buf.clear();
            }
            vp += 1;
            let close = match value.get(vp) {
                Some(b'{') => Some((b'{', b'}')),
                Some(b'(') => Some((b'(', b')')),
                _ => None,
            };
            if let Some((open, close)) = close {
                vp += 1;
                let mut level = 1;
                let mut ep = vp;
                while level > 0 {
                    let Some(&ch) = value.get(ep) else {
                        self.warnings.push(format!(
                            "truncated macro reference: \"{}\"",
                            String::from_utf8_lossy(value)
                        ));
                        status |= ERROR;
                        break;
                    };
                    if ch == open {
                        level += 1;
                    }
                    if ch == close {
                        level -= 1;
                    }
                    ep += 1;
                }
                // Postfix stops here on any error so far, earlier callbacks' included.
                if status & ERROR != 0 {
                    break;
                }
                buf.extend_from_slice(&value[vp..ep - 1]);
                vp = ep;
            } else {
                let len = value[vp..].iter().take_while(|&&b| is_name_byte(b)).count();
                buf.extend_from_slice(&value[vp..vp + len]);
                vp += len;
            }
            if buf.is_empty() {
                status |= ERROR;
                self.warnings.push(format!(
                    "empty macro name: \"{}\"",
                    String::from_utf8_lossy(value)
                ));
                break;
            }
            status |= self.callback(frame, Token::Expr, &buf)?;
            buf.clear();
        }
        if !buf.is_empty() && status & ERROR == 0 {
            status |= self.callback(frame, Token::Literal, &buf)?;
        }
        Ok(status)
    }

    /// Evaluates one token (mac_expand_callback).
    fn callback(&mut self, frame: &mut Frame, token: Token, buf: &[u8]) -> Result<u32, Abort> {
        let over = frame.level > NESTING_LIMIT;
        frame.level += 1;
        self.steps += 1;
        if over || self.depth > MAX_DEPTH || self.steps > MAX_STEPS {
            let text = format!("unreasonable macro call nesting: \"{}\"", lossy(buf));
            self.warn(frame, text);
        }
        if frame.status & ERROR != 0 {
            // Postfix returns here without undoing the level increment.
            return Ok(frame.status);
        }
        if token == Token::Literal {
            if !self.scan {
                frame.result.extend_from_slice(buf);
            }
            frame.level -= 1;
            return Ok(frame.status);
        }
        // Named parameter or relational expression.
        let mut cp;
        let value: Option<Vec<u8>>;
        let mut op = 0u8;
        if let Some(at) = left_curly(buf, 0) {
            cp = at;
            match self.relational(frame, buf, &mut cp)? {
                Some(result) => value = result,
                None => return Ok(frame.status),
            }
            if let Some(&ch) = buf.get(cp) {
                if ch != b'?' && ch != b':' {
                    let text = format!("\"?\" or \":\" expected at: \"...}}>>>{}\"", at20(buf, cp));
                    return Ok(self.warn(frame, text));
                }
                op = ch;
                cp += 1;
            }
        } else {
            let start = skip_space(buf, 0);
            cp = start;
            let end;
            loop {
                let after = skip_space(buf, cp);
                match buf.get(after) {
                    None => {
                        end = cp;
                        cp = buf.len();
                        break;
                    }
                    Some(&ch @ (b'?' | b':')) => {
                        end = cp;
                        op = ch;
                        cp = after + 1;
                        break;
                    }
                    Some(_) => {}
                }
                if !is_name_byte(buf[cp]) {
                    let text = format!(
                        "attribute name syntax error at: \"...{}>>>{}\"",
                        lossy(&buf[..cp]),
                        at20(buf, cp)
                    );
                    return Ok(self.warn(frame, text));
                }
                cp += 1;
            }
            let name = lossy(&buf[start..end]);
            value = self.lookup.lookup(&name).map(String::into_bytes);
            if value.is_none() && !self.scan {
                self.undefined.push(name.clone());
            }
            self.looked_up.push(name);
        }
        let non_empty = value.as_ref().is_some_and(|v| !v.is_empty());
        if op == b'?' {
            let if_true;
            if let Some(at) = left_curly(buf, cp) {
                cp = at;
                match self.curly_payload(frame, buf, &mut cp) {
                    Some(payload) => if_true = payload,
                    None => return Ok(frame.status),
                }
            } else {
                if_true = &buf[cp..];
                cp = buf.len();
            }
            if non_empty || self.scan {
                frame.status |= self.parse(frame, if_true)?;
            }
            if cp < buf.len() {
                if buf[cp] != b':' {
                    let text = format!(
                        "\":\" expected at: \"...{}}}>>>{}\"",
                        lossy(if_true),
                        at20(buf, cp)
                    );
                    return Ok(self.warn(frame, text));
                }
                cp += 1;
                op = b':';
            }
        }
        if op == b':' {
            let if_false;
            if let Some(at) = left_curly(buf, cp) {
                cp = at;
                match self.curly_payload(frame, buf, &mut cp) {
                    Some(payload) => if_false = payload,
                    None => return Ok(frame.status),
                }
            } else {
                if_false = &buf[cp..];
                cp = buf.len();
            }
            if !non_empty || self.scan {
                frame.status |= self.parse(frame, if_false)?;
            }
            if cp < buf.len() {
                let text = format!(
                    "unexpected input at: \"...{}}}>>>{}\"",
                    lossy(if_false),
                    at20(buf, cp)
                );
                return Ok(self.warn(frame, text));
            }
        }
        if op == 0 {
            match value {
                None => frame.status |= UNDEF,
                Some(v) if v.is_empty() || self.scan => {}
                Some(v) if self.recurse => frame.status |= self.parse(frame, &v)?,
                Some(v) => frame.result.extend_from_slice(&v),
            }
        }
        frame.level -= 1;
        Ok(frame.status)
    }

    /// `{payload}` at `*cp` (a `{`): the payload, with `*cp` moved past the `}` and the blanks
    /// after it. `None` (with the warning) when the braces do not balance.
    fn curly_payload<'b>(
        &mut self,
        frame: &mut Frame,
        buf: &'b [u8],
        cp: &mut usize,
    ) -> Option<&'b [u8]> {
        let start = *cp + 1;
        let mut level = 1;
        let mut at = start;
        loop {
            match buf.get(at) {
                None => {
                    let text = format!(
                        "unbalanced {{}} in attribute expression: \"{}\"",
                        lossy(&buf[*cp..])
                    );
                    self.warn(frame, text);
                    return None;
                }
                Some(b'{') => level += 1,
                Some(b'}') => {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                }
                Some(_) => {}
            }
            at += 1;
        }
        *cp = skip_space(buf, at + 1);
        Some(&buf[start..at])
    }

    /// `{left} op {right}` at `*cp`: `Ok(Some(value))` with the fake lookup result (`true`,
    /// empty, or `None` when scanning), `Ok(None)` after a reported error.
    #[allow(clippy::option_option)] // outer: error reported; inner: the lookup result
    fn relational(
        &mut self,
        frame: &mut Frame,
        buf: &[u8],
        cp: &mut usize,
    ) -> Result<Option<Option<Vec<u8>>>, Abort> {
        let Some(left) = self.curly_payload(frame, buf, cp) else {
            return Ok(None);
        };
        let op_start = *cp;
        let op_len = buf[op_start..]
            .iter()
            .take_while(|b| OP_CHARS.contains(b))
            .count();
        let op_text = &buf[op_start..op_start + op_len];
        let relop = match op_text {
            b"==" => Relop::Eq,
            b"!=" => Relop::Ne,
            b"<" => Relop::Lt,
            b"<=" => Relop::Le,
            b">=" => Relop::Ge,
            b">" => Relop::Gt,
            _ => {
                let text = format!(
                    "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" expected at: \
                     \"...{}}}>>>{}\"",
                    lossy(left),
                    at20(buf, op_start)
                );
                self.warn(frame, text);
                return Ok(None);
            }
        };
        *cp += op_len;
        // postconf registers one operator suffix: `level`.
        let suffix_len = buf[*cp..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let by_level = suffix_len > 0;
        if by_level && &buf[*cp..*cp + suffix_len] != b"level" {
            let text = format!(
                "bad operator suffix at: \"...{}>>>{}\"",
                lossy(op_text),
                lossy(&buf[*cp..*cp + suffix_len])
            );
            self.warn(frame, text);
            return Ok(None);
        }
        *cp += suffix_len;
        let Some(at) = left_curly(buf, *cp) else {
            let text = format!(
                "\"{{expression}}\" expected at: \"...{{{}}} {}>>>{}\"",
                lossy(left),
                lossy(op_text),
                at20(buf, *cp)
            );
            self.warn(frame, text);
            return Ok(None);
        };
        *cp = at;
        let Some(right) = self.curly_payload(frame, buf, cp) else {
            return Ok(None);
        };
        // Each operand is a fresh mac_expand (own level counter) sharing our mode.
        let (left_value, status) = self.expand_top(left)?;
        frame.status |= status;
        let (right_value, status) = self.expand_top(right)?;
        frame.status |= status;
        let mut outcome = None;
        if !self.scan {
            outcome = if by_level {
                self.compare_levels(&left_value, &right_value, relop)
            } else {
                Some(compare_default(&left_value, &right_value, relop)?)
            };
            if outcome.is_none() {
                frame.status |= ERROR;
            }
        }
        if frame.status & ERROR != 0 {
            return Ok(None);
        }
        Ok(Some(outcome.map(|truth| {
            if truth { b"true".to_vec() } else { Vec::new() }
        })))
    }

    fn compare_levels(&mut self, left: &[u8], right: &[u8], relop: Relop) -> Option<bool> {
        let mut parse = |text: &[u8]| {
            let text = lossy(text);
            let parsed = level::parse_level(&text);
            if parsed.is_none() {
                self.warnings
                    .push(format!("malformed compatibility level syntax: \"{text}\""));
            }
            parsed
        };
        let left = parse(left)?;
        let right = parse(right)?;
        Some(apply(left.cmp(&right), relop))
    }
}

/// mac_exp_eval: numeric when both sides are all digits, else a byte comparison.
fn compare_default(left: &[u8], right: &[u8], relop: Relop) -> Result<bool, Abort> {
    let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let order = if all_digits(left) && all_digits(right) {
        let number = |s: &[u8]| {
            let text = lossy(s);
            text.parse::<i64>().map_err(|_| Abort::BadConversion(text))
        };
        number(left)?.cmp(&number(right)?)
    } else {
        left.cmp(right)
    };
    Ok(apply(order, relop))
}

fn apply(order: std::cmp::Ordering, relop: Relop) -> bool {
    match relop {
        Relop::Eq => order.is_eq(),
        Relop::Ne => order.is_ne(),
        Relop::Lt => order.is_lt(),
        Relop::Le => order.is_le(),
        Relop::Ge => order.is_ge(),
        Relop::Gt => order.is_gt(),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Index of the first non-blank byte at or after `at`.
fn skip_space(buf: &[u8], at: usize) -> usize {
    at + buf[at.min(buf.len())..]
        .iter()
        .take_while(|&&b| is_space(b))
        .count()
}

/// Postfix's MAC_EXP_FIND_LEFT_CURLY: the index of a `{` after optional blanks.
fn left_curly(buf: &[u8], at: usize) -> Option<usize> {
    let at = skip_space(buf, at);
    (buf.get(at) == Some(&b'{')).then_some(at)
}

/// `%.20s` of the text from `at`.
fn at20(buf: &[u8], at: usize) -> String {
    let rest = &buf[at.min(buf.len())..];
    lossy(&rest[..rest.len().min(20)])
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
