//! The time rules, as data: terms, answer deadlines, skews and lead times. Defaults follow
//! domain.md; the hub's configuration may change every one of them.

use serde::{Deserialize, Serialize};

use super::ids::Timestamp;
use super::notice::Action;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Time to answer a stop-payment or a release, in ms.
    pub answer_stop_ms: i64,
    /// Time to answer a freeze or a renewal, in ms.
    pub answer_freeze_ms: i64,
    /// A stop-payment's term from its execution time, in ms (48 hours).
    pub stop_term_ms: i64,
    /// Stop-payments allowed on one account in one case.
    pub max_stops_per_account: usize,
    /// A freeze's term, in calendar months (6), and with a major-case approval (12).
    pub freeze_term_months: u32,
    pub major_freeze_term_months: u32,
    /// A renewal must arrive at least this long before expiry, in ms (10 days).
    pub renewal_lead_ms: i64,
    /// Police are reminded this long before a freeze expires, in ms (10 days).
    pub reminder_lead_ms: i64,
    /// How far an institution's reported execution time may be from the hub's clock before the
    /// hub uses its own receipt time instead, in ms.
    pub max_execution_skew_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            answer_stop_ms: 5 * MINUTE,
            answer_freeze_ms: 30 * MINUTE,
            stop_term_ms: 48 * HOUR,
            max_stops_per_account: 2,
            freeze_term_months: 6,
            major_freeze_term_months: 12,
            renewal_lead_ms: 10 * DAY,
            reminder_lead_ms: 10 * DAY,
            max_execution_skew_ms: 5 * MINUTE,
        }
    }
}

impl Policy {
    pub fn answer_deadline(&self, action: Action, created: Timestamp) -> Timestamp {
        let ms = match action {
            Action::StopPayment | Action::ReleaseStop | Action::ReleaseFreeze => {
                self.answer_stop_ms
            }
            Action::Freeze | Action::RenewFreeze => self.answer_freeze_ms,
        };
        created.plus_millis(ms)
    }

    pub fn freeze_term_months(&self, major: bool) -> u32 {
        if major {
            self.major_freeze_term_months
        } else {
            self.freeze_term_months
        }
    }
}

/// `t` plus `months` calendar months (UTC), the day clamped to the target month's length, as a
/// legal term is counted: 31 August + 6 months = 28/29 February.
pub fn add_months(t: Timestamp, months: u32) -> Timestamp {
    let ms = t.millis();
    let days = ms.div_euclid(DAY);
    let time_of_day = ms.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + (m as i64 - 1) + months as i64;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    Timestamp::from_millis(days_from_civil(ny, nm, nd) * DAY + time_of_day)
}

/// `t` as RFC 3339 UTC with milliseconds, for messages people read.
pub fn rfc3339(t: Timestamp) -> String {
    let ms = t.millis();
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY));
    let rest = ms.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / HOUR,
        rest % HOUR / MINUTE,
        rest % MINUTE / 1000,
        rest % 1000
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 -> (year, month 1-12, day 1-31); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32) -> Timestamp {
        Timestamp::from_millis(days_from_civil(y, m, d) * DAY + 3_600_000)
    }

    #[test]
    fn months_are_calendar_months_with_the_day_clamped() {
        assert_eq!(add_months(at(2026, 11, 28), 6), at(2027, 5, 28));
        assert_eq!(add_months(at(2026, 8, 31), 6), at(2027, 2, 28));
        assert_eq!(add_months(at(2027, 8, 31), 6), at(2028, 2, 29));
        assert_eq!(add_months(at(2026, 12, 15), 12), at(2027, 12, 15));
        assert_eq!(add_months(at(1970, 1, 1), 0), at(1970, 1, 1));
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(at(2026, 11, 28)), "2026-11-28T01:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp::from_millis(1_234)),
            "1970-01-01T00:00:01.234Z"
        );
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1000, 0, 1, 59, 365, 10_000, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
