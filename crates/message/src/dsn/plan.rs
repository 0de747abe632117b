//! Who gets a notice: the choice bounce(8) makes in bounce_notify_service.c (failure),
//! bounce_warn_service.c (delay) and bounce_trace_service.c (success, verify) from the original
//! sender and notify_classes, before any text is written.
//!
//! A sender gets the notice unless the original was itself a notice; a notice about a notice
//! (null sender) goes to a postmaster address instead, and a notice about a double bounce is
//! never sent. postmaster copies follow notify_classes (postconf(5)).

use super::text::same_address;
use super::{Kind, Reporter, Ret};

/// The notify_classes that matter to bounce(8) (postconf(5) notify_classes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyClasses {
    /// `bounce`: a postmaster copy of each non-delivery notice (headers only).
    pub bounce: bool,
    /// `2bounce`: undeliverable notices go to 2bounce_notice_recipient.
    pub double_bounce: bool,
    /// `delay`: a postmaster copy of each delay warning.
    pub delay: bool,
}

impl NotifyClasses {
    /// Parses a notify_classes value (`resource, software` by default): names separated by
    /// commas or white space, case-insensitive. Names that bounce(8) does not act on (resource,
    /// software, policy, protocol, data) are accepted and ignored.
    pub fn parse(value: &str) -> Self {
        let mut c = Self::default();
        for name in value
            .split(|ch: char| ch == ',' || ch.is_whitespace())
            .filter(|n| !n.is_empty())
        {
            match name.to_ascii_lowercase().as_str() {
                "bounce" => c.bounce = true,
                "2bounce" => c.double_bounce = true,
                "delay" => c.delay = true,
                _ => {}
            }
        }
        c
    }
}

/// Whose notice it is; it decides the subject, the Auto-Submitted: value, the boiler-plate text,
/// which recipients are listed and how much of the original is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The original sender (NO_POSTMASTER_COPY): boiler-plate text, `auto-replied`, only the
    /// recipients whose NOTIFY asks for this kind (or that gave no NOTIFY).
    Sender,
    /// A postmaster (POSTMASTER_COPY): no boiler-plate text, the template's postmaster subject,
    /// `auto-generated`, every recipient.
    Postmaster,
    /// A success or verify report about a notice, sent to 2bounce_notice_recipient: Postfix
    /// writes it as to a sender (NO_POSTMASTER_COPY) but lists every recipient.
    PostmasterTrace,
}

/// One notice to compose: its envelope and its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    /// The kind of notice (the template).
    pub kind: Kind,
    /// Its audience.
    pub audience: Audience,
    /// The notice's envelope sender as bounce(8) gives it to cleanup: empty for a notice to
    /// the sender, `double_bounce_sender@myhostname` for a postmaster notice.
    pub envelope_sender: String,
    /// The notice's recipient as bounce(8) gives it to cleanup (the original sender, or a
    /// *_notice_recipient value, unqualified as configured).
    pub recipient: String,
    /// How much of the original is returned (bounce_size_limit may still cut it to headers).
    pub ret: Ret,
}

/// Why no notice is sent, for the caller's log (bounce(8) logs these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// The original was a postmaster notice: `warning: QUEUEID: undeliverable postmaster
    /// notification discarded` (failure, delay) or `QUEUEID: not sending trace/success
    /// notification for double-bounce message` (success, verify).
    DoubleBounce,
    /// The original was a single bounce and notify_classes asks for no postmaster notice (for
    /// success and verify: `QUEUEID: not sending trace/success notification for single-bounce
    /// message`).
    SingleBounceNotNotified,
}

/// The notices bounce(8) would post for a message from `original_sender`, in posting order:
/// the notice itself first, then the postmaster copy (which Postfix sends only after the first
/// was posted). `dsn_ret` is the original's RET (none: FULL).
pub fn addressees(
    kind: Kind,
    original_sender: &str,
    dsn_ret: Option<Ret>,
    r: &Reporter,
) -> Result<Vec<Addressee>, Skipped> {
    let double_bounce = format!("{}@{}", r.double_bounce_sender, r.myhostname);
    if same_address(
        original_sender.as_bytes(),
        double_bounce.as_bytes(),
        r.smtputf8_enable,
    ) {
        return Err(Skipped::DoubleBounce);
    }
    let c = r.notify_classes;
    let one = |audience, from: &str, to: &str, ret| Addressee {
        kind,
        audience,
        envelope_sender: from.to_owned(),
        recipient: to.to_owned(),
        ret,
    };
    let null_sender = original_sender.is_empty();
    let out = match kind {
        Kind::Failure if null_sender => {
            if !(c.bounce || c.double_bounce) {
                return Err(Skipped::SingleBounceNotNotified);
            }
            let to = &r.bounce_2_notice_recipient;
            vec![one(Audience::Postmaster, &double_bounce, to, Ret::Full)]
        }
        Kind::Failure => {
            let mut v = vec![one(
                Audience::Sender,
                "",
                original_sender,
                dsn_ret.unwrap_or(Ret::Full),
            )];
            if c.bounce {
                let to = &r.bounce_notice_recipient;
                v.push(one(Audience::Postmaster, &double_bounce, to, Ret::Hdrs));
            }
            v
        }
        Kind::Delay if null_sender => {
            if !c.delay {
                return Err(Skipped::SingleBounceNotNotified);
            }
            let to = &r.delay_notice_recipient;
            vec![one(Audience::Postmaster, &double_bounce, to, Ret::Full)]
        }
        Kind::Delay => {
            let mut v = vec![one(Audience::Sender, "", original_sender, Ret::Hdrs)];
            if c.delay {
                let to = &r.delay_notice_recipient;
                v.push(one(Audience::Postmaster, &double_bounce, to, Ret::Hdrs));
            }
            v
        }
        Kind::Success | Kind::Verify if null_sender => {
            if !c.double_bounce {
                return Err(Skipped::SingleBounceNotNotified);
            }
            let to = &r.bounce_2_notice_recipient;
            vec![one(
                Audience::PostmasterTrace,
                &double_bounce,
                to,
                Ret::Hdrs,
            )]
        }
        Kind::Success | Kind::Verify => {
            vec![one(Audience::Sender, "", original_sender, Ret::Hdrs)]
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_classes_parse() {
        assert_eq!(
            NotifyClasses::parse("resource, software"),
            NotifyClasses::default()
        );
        let all = NotifyClasses::parse("Bounce,2bounce delay");
        assert!(all.bounce && all.double_bounce && all.delay);
    }

    #[test]
    fn addressee_table() {
        // (kind, classes, sender) -> [(audience, from, to, ret)] or skip
        type Row = (
            Kind,
            &'static str,
            &'static str,
            Result<Vec<(Audience, &'static str, &'static str, Ret)>, Skipped>,
        );
        let mut r = Reporter::new("mx.example.test");
        let pm = "double-bounce@mx.example.test";
        let rows: Vec<Row> = vec![
            (
                Kind::Failure,
                "",
                "a@x",
                Ok(vec![(Audience::Sender, "", "a@x", Ret::Full)]),
            ),
            (
                Kind::Failure,
                "bounce",
                "a@x",
                Ok(vec![
                    (Audience::Sender, "", "a@x", Ret::Full),
                    (Audience::Postmaster, pm, "postmaster", Ret::Hdrs),
                ]),
            ),
            (Kind::Failure, "", "", Err(Skipped::SingleBounceNotNotified)),
            (
                Kind::Failure,
                "2bounce",
                "",
                Ok(vec![(Audience::Postmaster, pm, "postmaster", Ret::Full)]),
            ),
            (Kind::Failure, "2bounce", pm, Err(Skipped::DoubleBounce)),
            (
                Kind::Failure,
                "",
                "Double-Bounce@MX.example.test",
                Err(Skipped::DoubleBounce),
            ),
            (
                Kind::Delay,
                "delay",
                "a@x",
                Ok(vec![
                    (Audience::Sender, "", "a@x", Ret::Hdrs),
                    (Audience::Postmaster, pm, "postmaster", Ret::Hdrs),
                ]),
            ),
            (
                Kind::Delay,
                "delay",
                "",
                Ok(vec![(Audience::Postmaster, pm, "postmaster", Ret::Full)]),
            ),
            (
                Kind::Success,
                "bounce",
                "a@x",
                Ok(vec![(Audience::Sender, "", "a@x", Ret::Hdrs)]),
            ),
            (
                Kind::Success,
                "2bounce",
                "",
                Ok(vec![(
                    Audience::PostmasterTrace,
                    pm,
                    "postmaster",
                    Ret::Hdrs,
                )]),
            ),
            (
                Kind::Success,
                "bounce",
                "",
                Err(Skipped::SingleBounceNotNotified),
            ),
        ];
        for (kind, classes, sender, want) in rows {
            r.notify_classes = NotifyClasses::parse(classes);
            let got = addressees(kind, sender, None, &r);
            let want = want.map(|v| {
                v.into_iter()
                    .map(|(audience, from, to, ret)| Addressee {
                        kind,
                        audience,
                        envelope_sender: from.into(),
                        recipient: to.into(),
                        ret,
                    })
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{kind:?} {classes} {sender}");
        }
        r.notify_classes = NotifyClasses::default();
        let hdrs = addressees(Kind::Failure, "a@x", Some(Ret::Hdrs), &r).unwrap();
        assert_eq!(hdrs[0].ret, Ret::Hdrs);
    }
}
