//! Random bytes through line assembly, the command parser and the DATA/BDAT
//! readers never panic, and the assembler never returns a line over the limit.

use proptest::prelude::*;
use tern_smtp::command::{Command, Request};
use tern_smtp::data::{BdatReader, DataReader};
use tern_smtp::line::{BareLfPolicy, LineAssembler, Overlong};
use tern_smtp::params::{ParseOptions, extract_address};
use tern_smtp::session::{Session, SessionConfig, Step, Verdict};

fn policy() -> impl Strategy<Value = BareLfPolicy> {
    prop_oneof![
        Just(BareLfPolicy::No),
        Just(BareLfPolicy::Normalize),
        Just(BareLfPolicy::Reject)
    ]
}

/// Bytes biased toward SMTP syntax so that the parsers get past their first checks.
fn smtpish() -> impl Strategy<Value = Vec<u8>> {
    let atoms = prop_oneof![
        Just(b"MAIL FROM:".to_vec()),
        Just(b"RCPT TO:".to_vec()),
        Just(b"BDAT ".to_vec()),
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"@".to_vec()),
        Just(b" SIZE=".to_vec()),
        Just(b" NOTIFY=".to_vec()),
        Just(b" ORCPT=rfc822;".to_vec()),
        Just(b"+".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b".".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atoms, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn line_assembly_is_bounded(input in prop::collection::vec(any::<u8>(), 0..600),
                                limit in 2usize..40, p in policy(), split in any::<bool>(),
                                cut in 0usize..600) {
        let mut a = LineAssembler::new(limit, p);
        a.set_overlong(if split { Overlong::Split } else { Overlong::Skip });
        let cut = cut.min(input.len());
        for part in [&input[..cut], &input[cut..]] {
            a.push(part);
            while let Some(line) = a.next_line() {
                prop_assert!(line.text.len() <= limit);
            }
        }
    }

    #[test]
    fn command_parsing_never_panics(line in smtpish(), utf8 in any::<bool>(), dsn in any::<bool>(),
                                    strict in any::<bool>()) {
        let opts = ParseOptions { smtputf8: utf8, dsn, strict_rfc821: strict, domains_by_driver: false };
        let _ = Command::parse(&line, &opts);
        if let Ok(req) = Request::parse(&line, false) {
            for t in &req.args {
                let _ = extract_address(&t.text, true, strict);
            }
        }
    }

    #[test]
    fn session_never_panics(input in smtpish(), p in policy()) {
        let mut cfg = SessionConfig::new("mx.example.test");
        cfg.bare_lf = p;
        let mut s = Session::new(cfg);
        let mut a = LineAssembler::new(64, p);
        a.push(&input);
        let mut reader: Option<DataReader> = None;
        let mut rounds = 0;
        while let Some(line) = a.next_line() {
            rounds += 1;
            prop_assert!(rounds < 10_000);
            if let Some(r) = &mut reader {
                if r.line(&line) == tern_smtp::data::DataStep::End {
                    let sum = r.finish();
                    reader = None;
                    let _ = s.message_done(sum, tern_smtp::session::MessageOutcome::Queued { queue_id: "Q".into() });
                }
                continue;
            }
            let mut step = s.command(&line);
            for _ in 0..4 {
                match step {
                    Step::Decide(_) => step = s.decide(Verdict::Accept),
                    Step::ReadData(_) => { reader = Some(DataReader::new(p, 1000)); break; }
                    Step::ReadChunk { size, last } => {
                        let mut b = BdatReader::new(p, 64, 1000);
                        b.start_chunk(size, last);
                        let data = a.take_raw(usize::try_from(size).unwrap_or(usize::MAX));
                        b.feed(&data, &mut |_, _| {});
                        let outcome = last.then(|| tern_smtp::session::MessageOutcome::Queued { queue_id: "Q".into() });
                        step = s.chunk_done(b.summary(), outcome);
                    }
                    Step::SkipChunk { size, .. } => {
                        let _ = a.take_raw(usize::try_from(size).unwrap_or(usize::MAX));
                        break;
                    }
                    _ => break,
                }
            }
            if s.is_closed() { break; }
        }
    }

    #[test]
    fn data_readers_never_panic(input in smtpish(), p in policy(), chunks in prop::collection::vec(0usize..50, 0..8)) {
        let mut a = LineAssembler::new(16, p);
        a.set_overlong(Overlong::Split);
        a.push(&input);
        let mut r = DataReader::new(p, 100);
        while let Some(line) = a.next_line() {
            let _ = r.line(&line);
        }
        let mut b = BdatReader::new(p, 16, 100);
        let mut rest: &[u8] = &input;
        for (i, n) in chunks.iter().enumerate() {
            let n = (*n).min(rest.len());
            b.start_chunk(n as u64, i + 1 == chunks.len());
            let used = b.feed(&rest[..n], &mut |t, _| assert!(t.len() <= 16));
            prop_assert_eq!(used, n);
            rest = &rest[n..];
        }
    }
}
