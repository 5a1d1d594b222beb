//! RFC 3339 instants for the CLI: parsing flags like `2026-11-28T07:00:00Z` into protobuf
//! timestamps and printing timestamps back as UTC strings. No calendar dependency: the
//! days <-> civil date conversions are Howard Hinnant's public-domain algorithms.

use crate::clock::{Clock, SystemClock};
use prost_types::Timestamp;

const EXPECTED: &str =
    "expected an RFC 3339 time like 2026-11-28T07:00:00Z or 2026-11-28T15:00:00+08:00";

/// Now, from the crate's one sanctioned wall clock.
pub fn now() -> Timestamp {
    from_millis(SystemClock.now().millis())
}

/// A protobuf timestamp from milliseconds since the Unix epoch.
pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        // rem_euclid(1000) * 1e6 is below 1e9, so it fits an i32.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Parses an RFC 3339 date-time (`T` or space between date and time, optional fraction of
/// up to 9 digits, `Z` or a `+hh:mm` / `-hh:mm` offset). Used as a clap value parser.
pub fn parse(s: &str) -> Result<Timestamp, String> {
    let fail = |why: &str| format!("{s:?}: {why}; {EXPECTED}");
    let mut c = Cursor {
        s: s.as_bytes(),
        pos: 0,
    };
    let year = c.number(4).ok_or_else(|| fail("bad year"))?;
    c.byte(b"-").ok_or_else(|| fail("bad date"))?;
    let month = c
        .number(2)
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| fail("bad month"))?;
    c.byte(b"-").ok_or_else(|| fail("bad date"))?;
    let day = c.number(2).ok_or_else(|| fail("bad day"))?;
    if day < 1 || day > days_in_month(i64::from(year), month) {
        return Err(fail("day out of range for the month"));
    }
    c.byte(b"Tt ")
        .ok_or_else(|| fail("missing 'T' between date and time"))?;
    let hour = c
        .number(2)
        .filter(|h| *h < 24)
        .ok_or_else(|| fail("bad hour"))?;
    c.byte(b":").ok_or_else(|| fail("bad time"))?;
    let minute = c
        .number(2)
        .filter(|m| *m < 60)
        .ok_or_else(|| fail("bad minute"))?;
    c.byte(b":").ok_or_else(|| fail("seconds are required"))?;
    let second = c
        .number(2)
        .filter(|s| *s < 60)
        .ok_or_else(|| fail("bad second"))?;
    let nanos = c
        .fraction()
        .ok_or_else(|| fail("bad fraction of a second"))?;
    let offset = c
        .offset()
        .ok_or_else(|| fail("missing or bad zone ('Z' or +hh:mm)"))?;
    if c.pos != c.s.len() {
        return Err(fail("unexpected text after the time"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    Ok(Timestamp { seconds, nanos })
}

/// Formats as RFC 3339 in UTC: `2026-11-28T07:00:00Z`, with `.123` milliseconds (or all nine
/// digits) only when the fraction is not zero.
pub fn format(t: &Timestamp) -> String {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let fraction = match t.nanos {
        0 => String::new(),
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n => format!(".{n:09}"),
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{fraction}Z")
}

/// Formats an optional timestamp; `-` when unset.
pub fn format_opt(t: Option<&Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), format)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits.
    fn number(&mut self, n: usize) -> Option<u32> {
        let digits = self.s.get(self.pos..self.pos + n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.pos += n;
        Some(
            digits
                .iter()
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
        )
    }

    /// One byte out of `allowed`.
    fn byte(&mut self, allowed: &[u8]) -> Option<u8> {
        let b = *self.s.get(self.pos)?;
        allowed.contains(&b).then(|| {
            self.pos += 1;
            b
        })
    }

    /// An optional `.ddd` fraction of 1-9 digits, as nanoseconds.
    fn fraction(&mut self) -> Option<i32> {
        if self.byte(b".").is_none() {
            return Some(0);
        }
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let digits = &self.s[start..self.pos];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let value = digits
            .iter()
            .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
        Some(value * 10i32.pow(9 - digits.len() as u32))
    }

    /// `Z` or `±hh:mm`, as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.byte(b"Zz+-")? {
            b'+' => 1,
            b'-' => -1,
            _ => return Some(0),
        };
        let hours = self.number(2).filter(|h| *h < 24)?;
        self.byte(b":")?;
        let minutes = self.number(2).filter(|m| *m < 60)?;
        Some(sign * i64::from(hours * 3600 + minutes * 60))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap(), ts(0, 0));
        assert_eq!(parse("2026-11-28T07:00:00Z").unwrap(), ts(1_795_849_200, 0));
        assert_eq!(
            parse("2026-11-28T15:00:00+08:00").unwrap(),
            ts(1_795_849_200, 0)
        );
        assert_eq!(
            parse("2026-11-27 23:30:00-07:30").unwrap(),
            ts(1_795_849_200, 0)
        );
        assert_eq!(
            parse("2000-02-29t12:00:00.5z").unwrap(),
            ts(951_825_600, 500_000_000)
        );
        assert_eq!(parse("1969-12-31T23:59:59.000000001Z").unwrap(), ts(-1, 1));
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28T07:00Z",
            "2026-11-28T07:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T07:00:60Z",
            "2026-11-28T07:00:00.Z",
            "2026-11-28T07:00:00.1234567890Z",
            "2026-11-28T07:00:00Zjunk",
            "2026-11-28T07:00:00+0800",
            "２０２６-11-28T07:00:00Z",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_in_utc() {
        assert_eq!(format(&ts(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(format(&ts(1_795_849_200, 0)), "2026-11-28T07:00:00Z");
        assert_eq!(
            format(&ts(951_825_600, 500_000_000)),
            "2000-02-29T12:00:00.500Z"
        );
        assert_eq!(format(&ts(-1, 1)), "1969-12-31T23:59:59.000000001Z");
        assert_eq!(format_opt(None), "-");
    }

    #[test]
    fn round_trips() {
        let mut seconds = -62_135_596_800; // 0001-01-01
        while seconds < 253_402_300_799 {
            // up to 9999-12-31
            for nanos in [0, 7_000_000, 123_456_789] {
                let t = ts(seconds, nanos);
                assert_eq!(parse(&format(&t)).unwrap(), t);
            }
            seconds += 86_400 * 37 + 3_601;
        }
    }

    #[test]
    fn millis_convert_with_negative_values() {
        assert_eq!(from_millis(1_500), ts(1, 500_000_000));
        assert_eq!(from_millis(-1), ts(-1, 999_000_000));
    }
}
