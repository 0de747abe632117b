//! The numbers in `delay=` and `delays=a/b/c/d`, formatted as Postfix formats them.
//!
//! Postfix (global/log_adhoc.c with util/format_tv.c) prints a delay with two significant
//! digits, but never finer than `delay_logging_resolution_limit` decimals (default 2), and
//! rounds large values to whole seconds: 0.0123 s is `0.01`, 1.26 s is `1.3`, 35.4 s is
//! `35`, 99.6 s is `100`, and zero is `0`. Trailing zeros are never printed.
//!
//! Trust: the durations come from our own clock; nothing here reads input.

use std::fmt::Write as _;
use std::time::Duration;

/// Significant digits Postfix keeps in a delay (SIG_DIGS in log_adhoc.c).
const SIGNIFICANT_DIGITS: u32 = 2;

/// The default of `delay_logging_resolution_limit`.
pub const DEFAULT_RESOLUTION_LIMIT: u32 = 2;

const MILLION: u64 = 1_000_000;

/// One delay as Postfix prints it, with at most `max_decimals` decimals (0..=6;
/// `delay_logging_resolution_limit`). Values above 6 are taken as 6.
pub fn format_delay(delay: Duration, max_decimals: u32) -> String {
    let mut out = String::new();
    push_delay(&mut out, delay, max_decimals);
    out
}

/// The five delays of a delivery record, in the order Postfix prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delays {
    /// `delay=`: from arrival in the queue to the end of this delivery attempt.
    pub total: Duration,
    /// `a`: before the queue manager (receipt, cleanup, incoming queue).
    pub before_qmgr: Duration,
    /// `b`: in the queue manager (scheduling, waiting for a delivery agent).
    pub in_qmgr: Duration,
    /// `c`: connection set-up (DNS, TCP, HELO, TLS); zero for local delivery.
    pub conn_setup: Duration,
    /// `d`: transmission.
    pub transmission: Duration,
}

impl Delays {
    /// `delay=T, delays=a/b/c/d` with `max_decimals` decimals at most.
    pub fn render(&self, max_decimals: u32) -> String {
        let mut out = String::from("delay=");
        push_delay(&mut out, self.total, max_decimals);
        out.push_str(", delays=");
        for (i, d) in [
            self.before_qmgr,
            self.in_qmgr,
            self.conn_setup,
            self.transmission,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push('/');
            }
            push_delay(&mut out, d, max_decimals);
        }
        out
    }
}

/// Appends one delay to `out`.
fn push_delay(out: &mut String, delay: Duration, max_decimals: u32) {
    let max_decimals = max_decimals.min(6);
    let mut sec = delay.as_secs();
    let mut usec = u64::from(delay.subsec_micros());
    let width = 10u64.pow(SIGNIFICANT_DIGITS);

    // The finest step we may print, in microseconds.
    let mut step = MILLION / 10u64.pow(max_decimals);
    if step < MILLION {
        if sec > 0 {
            // Whole seconds already use some of the significant digits: with one digit
            // before the point one decimal is left, with two or more none.
            let mut n = 1;
            while sec >= n && n <= width / 10 {
                n *= 10;
            }
            step = (MILLION / width) * n;
        } else {
            // Below one second: widen the step until the value has at most two
            // significant digits above it.
            while usec >= width * step {
                step *= 10;
            }
        }
    }

    // Round half up at the chosen step; what lies below the step is not printed.
    if step > 1 {
        usec += step / 2;
        if usec >= MILLION {
            sec += 1;
            usec -= MILLION;
        }
    }

    // Writing to a String cannot fail.
    let _ = write!(out, "{sec}");
    if usec >= step {
        out.push('.');
        let mut rest = usec;
        let mut place = MILLION / 10;
        while rest >= step && place > 0 {
            let digit = rest / place;
            // `digit` is 0..=9 because rest < MILLION and place divides down from 10^5.
            out.push(char::from(b'0' + u8::try_from(digit).unwrap_or(9)));
            rest %= place;
            place /= 10;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(sec: u64, usec: u32) -> Duration {
        Duration::new(sec, usec * 1000)
    }

    /// Values checked against the behaviour of Postfix's format_tv (two significant digits)
    /// and against delays seen in Postfix 3.7.11's log (`delay=0.01`, `delay=35`,
    /// `delays=35/0.01/0/0`).
    #[test]
    fn two_significant_digits_with_six_decimals() {
        let cases = [
            (d(1110, 0), "1110"),
            (d(111, 0), "111"),
            (d(11, 100_000), "11"),
            (d(1, 110_000), "1.1"),
            (d(0, 111_000), "0.11"),
            (d(0, 11_100), "0.011"),
            (d(0, 1_110), "0.0011"),
            (d(0, 111), "0.00011"),
            (d(0, 11), "0.000011"),
            (d(1000, 0), "1000"),
            (d(10, 0), "10"),
            (d(1, 0), "1"),
            (d(0, 100_000), "0.1"),
            (d(0, 1_000), "0.001"),
            (d(0, 1), "0.000001"),
            (d(996, 0), "996"),
            (d(99, 600_000), "100"),
            (d(9, 960_000), "10"),
            (d(0, 996_000), "1"),
            (d(0, 99_600), "0.1"),
            (d(0, 9_960), "0.01"),
            (d(0, 996), "0.001"),
            (d(0, 0), "0"),
        ];
        for (delay, want) in cases {
            assert_eq!(format_delay(delay, 6), want, "{delay:?}");
        }
    }

    #[test]
    fn default_resolution_of_two_decimals() {
        let cases = [
            (d(0, 0), "0"),
            (d(0, 4_999), "0"),
            (d(0, 5_000), "0.01"),
            (d(0, 12_345), "0.01"),
            (d(0, 123_456), "0.12"),
            (d(0, 995_000), "1"),
            (d(1, 260_000), "1.3"),
            (d(1, 940_000), "1.9"),
            (d(1, 950_000), "2"),
            (d(35, 400_000), "35"),
            (d(35, 500_000), "36"),
            (d(86_400, 0), "86400"),
        ];
        for (delay, want) in cases {
            assert_eq!(
                format_delay(delay, DEFAULT_RESOLUTION_LIMIT),
                want,
                "{delay:?}"
            );
        }
    }

    #[test]
    fn zero_decimals_rounds_to_seconds() {
        assert_eq!(format_delay(d(0, 400_000), 0), "0");
        assert_eq!(format_delay(d(0, 600_000), 0), "1");
        assert_eq!(format_delay(d(2, 500_000), 0), "3");
    }

    #[test]
    fn delays_render_in_postfix_order() {
        let delays = Delays {
            total: d(35, 0),
            before_qmgr: d(35, 0),
            in_qmgr: d(0, 10_000),
            conn_setup: d(0, 0),
            transmission: d(0, 0),
        };
        assert_eq!(delays.render(2), "delay=35, delays=35/0.01/0/0");
    }

    proptest::proptest! {
        /// Whatever the value, the output parses back within half a step of the input and
        /// has no trailing zero after the point.
        #[test]
        fn close_and_without_trailing_zero(sec in 0u64..100_000, usec in 0u32..1_000_000,
                                           res in 0u32..7) {
            let text = format_delay(d(sec, usec), res);
            let value: f64 = text.parse().unwrap();
            #[allow(clippy::cast_precision_loss)]
            let exact = sec as f64 + f64::from(usec) / 1e6;
            proptest::prop_assert!((value - exact).abs() <= exact * 0.05 + 0.5);
            if text.contains('.') {
                proptest::prop_assert!(!text.ends_with('0'));
            }
        }
    }
}
