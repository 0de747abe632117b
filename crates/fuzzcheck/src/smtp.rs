//! SMTP targets (crates/smtp): the command-line parser, the sans-IO session machine
//! driven two ways (test transcripts and raw byte streams), and the DATA and BDAT
//! content readers.
//!
//! The session targets go through [`tern_smtp::transcript::replay`], the same sans-IO
//! driver loop that the transcript tests use (line assembly, commands, policy verdicts,
//! DATA lines, BDAT chunks), so a fuzzed byte stream meets the code a socket driver runs.
//!
//! Security: the input stands for a hostile client's bytes; nothing here trusts it.

use tern_smtp::command::{Command, Request};
use tern_smtp::data::{BdatReader, DataReader, DataStep};
use tern_smtp::line::{BareLfPolicy, LineAssembler, Overlong};
use tern_smtp::params::{self, ParseOptions};
use tern_smtp::reply::{EnhancedStatus, Reply};
use tern_smtp::transcript::{Item, Transcript, replay};

/// The bare-LF policy a selector byte picks (two bits).
fn policy(bits: u8) -> BareLfPolicy {
    match bits & 3 {
        1 => BareLfPolicy::Normalize,
        2 => BareLfPolicy::Reject,
        _ => BareLfPolicy::No,
    }
}

/// One command line: byte 0 picks the parse options, the rest is the line (without its
/// CRLF). Also the address extractor, xtext, the domain check, reply texts and the line
/// assembler over the same bytes.
pub fn command(data: &[u8]) {
    let Some((&flags, line)) = data.split_first() else {
        return;
    };
    let opts = ParseOptions {
        smtputf8: flags & 1 != 0,
        dsn: flags & 2 != 0,
        strict_rfc821: flags & 4 != 0,
        domains_by_driver: flags & 8 != 0,
    };
    let _ = Command::parse(line, &opts);
    if let Ok(req) = Request::parse(line, !opts.smtputf8) {
        let _ = Command::from_request(&req, &opts);
        let _ = req.joined_args();
        for arg in &req.args {
            for (empty, strict) in [(true, false), (false, true)] {
                let _ = params::extract_address(&arg.text, empty, strict);
            }
            let _ = params::xtext_decode(&arg.text);
            let _ = params::valid_domain(&arg.text);
        }
    }
    let text = String::from_utf8_lossy(line);
    let _ = params::extract_address(&text, true, opts.strict_rfc821);
    if let Ok(reply) = Reply::parse(&text) {
        let _ = reply.to_wire(true);
        let _ = reply.to_string();
    }
    let _ = EnhancedStatus::parse(&text);
    let _ = tern_smtp::pipelining::escape(line);
    // The assembler in both modes, with a tiny limit that makes every cut reachable.
    for limit in [2, 7, tern_smtp::line::DEFAULT_LINE_LIMIT] {
        let mut lines = LineAssembler::new(limit, policy(flags >> 4));
        lines.set_overlong(if flags & 64 == 0 {
            Overlong::Skip
        } else {
            Overlong::Split
        });
        lines.push(line);
        // Bounded: each line consumes at least one byte.
        for _ in 0..=line.len() {
            let Some(l) = lines.next_line() else { break };
            assert!(l.text.len() <= limit, "line of {} > {limit}", l.text.len());
        }
    }
}

/// A test transcript (crates/smtp/tests/transcripts/*.txt format) replayed against the
/// session machine: settings, client input with escapes, policy verdicts from `S!` lines.
pub fn session(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = Transcript::parse(&text) {
        let _ = replay(&t);
    }
}

/// A raw client byte stream: byte 0 picks settings, byte 1 the size of each write (0:
/// all at once), the rest is what the client sends, greeting to hang-up.
///
/// Byte 0: bits 0-1 smtpd_forbid_bare_newline (no, normalize, reject); bit 2
/// smtpd_helo_required; bit 3 smtpd_forbid_unauth_pipelining; bit 4 smtputf8_enable =
/// no; bit 5 strict_rfc821_envelopes; bit 6 the policy rejects the first decision of
/// each write; bit 7 small limits (2 recipients, 200-byte messages, 5 errors).
pub fn stream(data: &[u8]) {
    let [flags, write, client @ ..] = data else {
        return;
    };
    let yes = |bit: u8| if flags & bit != 0 { "yes" } else { "no" };
    let bare_lf = ["no", "normalize", "reject", "no"][usize::from(flags & 3)];
    let mut settings = vec![
        ("smtpd_forbid_bare_newline", bare_lf),
        ("smtpd_helo_required", yes(4)),
        ("smtpd_forbid_unauth_pipelining", yes(8)),
        (
            "smtputf8_enable",
            if flags & 16 != 0 { "no" } else { "yes" },
        ),
        ("strict_rfc821_envelopes", yes(32)),
    ];
    if flags & 128 != 0 {
        settings.extend([
            ("smtpd_recipient_limit", "2"),
            ("message_size_limit", "200"),
            ("smtpd_soft_error_limit", "2"),
            ("smtpd_hard_error_limit", "5"),
        ]);
    }
    let mut t = Transcript {
        settings: settings
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        items: Vec::new(),
    };
    // The greeting comes first unless the client talks first, as a transcript's `S:`.
    t.items.push(Item::Server("220 *".into()));
    let size = if *write == 0 {
        client.len().max(1)
    } else {
        usize::from(*write)
    };
    for piece in client.chunks(size) {
        t.items.push(Item::Client(piece.to_vec()));
        if flags & 64 != 0 {
            t.items.push(Item::Policy("550 5.7.1 fuzz says no".into()));
        }
    }
    let _ = replay(&t);
}

/// Message content after DATA and in BDAT chunks. Byte 0: bits 0-1 the bare-LF policy,
/// bits 2-3 message_size_limit (none, 64, 1000, 10240000); byte 1: line_length_limit
/// (2 + the byte) and, for BDAT, the chunk size (1 + the byte). The rest is the content,
/// read once as DATA lines (several messages if dots end them) and once as BDAT chunks.
///
/// Checked beyond "no panic": no record is longer than line_length_limit, the records
/// of BDAT hold no more bytes than went in, and the counted size never passes the limit.
pub fn data(data: &[u8]) {
    let [flags, sizes, content @ ..] = data else {
        return;
    };
    let policy = policy(*flags);
    let size_limit = [0, 64, 1000, 10_240_000][usize::from((flags >> 2) & 3)];
    let limit = 2 + usize::from(*sizes);

    let mut lines = LineAssembler::new(limit, policy);
    lines.set_overlong(Overlong::Split);
    lines.push(content);
    let mut reader = DataReader::new(policy, size_limit);
    // Bounded: each line consumes at least one input byte.
    for _ in 0..=content.len() {
        let Some(line) = lines.next_line() else { break };
        match reader.line(&line) {
            DataStep::Store(text, _) => assert!(text.len() <= limit),
            DataStep::Skip => {}
            DataStep::End => {
                let summary = reader.finish();
                assert!(size_limit == 0 || summary.size <= size_limit);
                // What follows the dot is the next command; read it as content again.
                reader = DataReader::new(policy, size_limit);
            }
        }
    }

    let chunk = 1 + usize::from(*sizes);
    let mut bdat = BdatReader::new(policy, limit, size_limit);
    let mut stored = 0usize;
    let mut sink = |text: &[u8], _| {
        assert!(text.len() <= limit, "record of {} > {limit}", text.len());
        stored += text.len();
    };
    let pieces: Vec<&[u8]> = content.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        bdat.start_chunk(piece.len() as u64, i + 1 == pieces.len());
        let used = bdat.feed(piece, &mut sink);
        assert_eq!(used, piece.len());
    }
    assert!(stored <= content.len());
    let summary = bdat.summary();
    assert!(size_limit == 0 || summary.size <= size_limit);
}
