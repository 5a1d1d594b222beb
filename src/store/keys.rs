//! Key byte layouts of the store's trees. All integers are big-endian so that sled's byte
//! order is numeric order.
//!
//! | tree           | key                                        | value                       |
//! |----------------|--------------------------------------------|-----------------------------|
//! | `notices`      | notice id (ASCII, `N` + 12 digits)           | `NoticeRecord`              |
//! | `instructions` | instruction id (ASCII, `I` + 12 digits)      | `InstructionRecord`         |
//! | `requests`     | agency code, 0x00, request id               | `RequestRecord`             |
//! | `outbox`       | institution, 0x00, sequence (u64 BE)        | `OutboxEntry`               |
//! | `unacked`      | institution, 0x00, priority (u8), sequence  | instruction id              |
//! | `timers`       | due (ms, u64 BE), kind (u8), instruction id | expected expiry (i64 BE)    |
//! | `case_accounts`| agency, 0, case, 0, institution, 0, account, 0, instruction id | empty |
//!
//! Codes never contain 0x00 (they are A-Z, 0-9, '-'), nor do case references and account
//! numbers (control characters are refused at the edge), so the separator keeps prefixes
//! apart. Time-first timer keys make the earliest due item the tree's first key.

/// `N000000000042`: fixed width so that key order is creation order.
pub fn notice_id(n: u64) -> String {
    format!("N{n:012}")
}

pub fn instruction_id(n: u64) -> String {
    format!("I{n:012}")
}

pub fn request(agency: &str, request_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(agency.len() + 1 + request_id.len());
    k.extend_from_slice(agency.as_bytes());
    k.push(0);
    k.extend_from_slice(request_id.as_bytes());
    k
}

/// The prefix of one institution's entries in `outbox` or `unacked`.
pub fn institution_prefix(institution: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(institution.len() + 1);
    k.extend_from_slice(institution.as_bytes());
    k.push(0);
    k
}

pub fn delivery(institution: &str, seq: u64) -> Vec<u8> {
    let mut k = institution_prefix(institution);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// An `unacked` key: within an institution, by priority, then sequence.
pub fn unacked(institution: &str, priority: u8, seq: u64) -> Vec<u8> {
    let mut k = institution_prefix(institution);
    k.push(priority);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A `timers` key. Instants before 1970 do not occur (refused at the edge); clamp to 0.
pub fn timer(due_ms: i64, kind: u8, instruction_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + instruction_id.len());
    k.extend_from_slice(&(due_ms.max(0) as u64).to_be_bytes());
    k.push(kind);
    k.extend_from_slice(instruction_id.as_bytes());
    k
}

/// Splits a `timers` key into (due ms, kind, instruction id).
pub fn parse_timer(key: &[u8]) -> Option<(i64, u8, String)> {
    let due: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let kind = *key.get(8)?;
    let id = std::str::from_utf8(key.get(9..)?).ok()?.to_owned();
    Some((u64::from_be_bytes(due) as i64, kind, id))
}

/// The prefix of one case's entries in `case_accounts`.
pub fn case_prefix(agency: &str, case: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(agency.len() + case.len() + 2);
    k.extend_from_slice(agency.as_bytes());
    k.push(0);
    k.extend_from_slice(case.as_bytes());
    k.push(0);
    k
}

/// The prefix of one account's entries within a case.
pub fn case_account_prefix(agency: &str, case: &str, institution: &str, account: &str) -> Vec<u8> {
    let mut k = case_prefix(agency, case);
    k.extend_from_slice(institution.as_bytes());
    k.push(0);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k
}

pub fn case_account(
    agency: &str,
    case: &str,
    institution: &str,
    account: &str,
    instruction_id: &str,
) -> Vec<u8> {
    let mut k = case_account_prefix(agency, case, institution, account);
    k.extend_from_slice(instruction_id.as_bytes());
    k
}

/// (institution, account, instruction id) of a `case_accounts` key, given its case prefix length.
pub fn parse_case_account(key: &[u8], prefix_len: usize) -> Option<(String, String, String)> {
    let rest = std::str::from_utf8(key.get(prefix_len..)?).ok()?;
    let mut parts = rest.splitn(3, '\0');
    Some((
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
    ))
}

/// The sequence number at the end of a `delivery` key.
pub fn delivery_seq(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_keys_sort_by_sequence_within_an_institution() {
        let a = delivery("ICBC", 2);
        let b = delivery("ICBC", 256);
        let other = delivery("ICBC-X", 1);
        assert!(a < b);
        assert!(
            b < other,
            "one institution's entries never interleave with another's"
        );
        assert_eq!(delivery_seq(&b), Some(256));
        assert!(b.starts_with(&institution_prefix("ICBC")));
        assert!(!other.starts_with(&institution_prefix("ICBC")));
    }

    #[test]
    fn unacked_keys_sort_by_priority_then_sequence() {
        assert!(unacked("ICBC", 0, 900) < unacked("ICBC", 1, 2));
        assert!(unacked("ICBC", 1, 2) < unacked("ICBC", 1, 3));
        assert!(unacked("ICBC", 2, u64::MAX) < unacked("ICBC-X", 0, 0));
        assert_eq!(delivery_seq(&unacked("ICBC", 1, 77)), Some(77));
    }

    #[test]
    fn timer_keys_sort_by_due_time_and_round_trip() {
        let early = timer(1_000, 9, "I000000000009");
        let late = timer(2_000, 0, "I000000000001");
        assert!(early < late);
        assert_eq!(
            parse_timer(&late),
            Some((2_000, 0, "I000000000001".to_string()))
        );
        assert_eq!(parse_timer(&timer(-5, 1, "I1")).map(|t| t.0), Some(0));
    }

    #[test]
    fn case_account_keys_group_by_case_then_account() {
        let a = case_account("PSB", "C-1", "ICBC", "6222", "I1");
        let prefix = case_prefix("PSB", "C-1");
        assert!(a.starts_with(&prefix));
        assert!(a.starts_with(&case_account_prefix("PSB", "C-1", "ICBC", "6222")));
        assert!(!case_account("PSB", "C-10", "ICBC", "6222", "I1").starts_with(&prefix));
        assert_eq!(
            parse_case_account(&a, prefix.len()),
            Some(("ICBC".into(), "6222".into(), "I1".into()))
        );
    }

    #[test]
    fn ids_sort_by_number() {
        assert!(notice_id(9) < notice_id(10));
        assert!(instruction_id(99) < instruction_id(100));
    }
}
