//! Key byte layouts of the store's trees. All integers are big-endian so that sled's byte
//! order is numeric order.
//!
//! | tree           | key                                        | value                       |
//! |----------------|--------------------------------------------|-----------------------------|
//! | `notices`      | notice id (ASCII, `N` + 12 digits)           | `NoticeRecord`              |
//! | `instructions` | instruction id (ASCII, `I` + 12 digits)      | `InstructionRecord`         |
//! | `requests`     | agency code, 0x00, request id               | `RequestRecord`             |
//! | `outbox`       | institution code, 0x00, sequence (u64 BE)   | instruction id              |
//! | `unacked`      | institution code, 0x00, sequence (u64 BE)   | instruction id              |
//!
//! Codes never contain 0x00 (they are A-Z, 0-9, '-'), so the separator keeps prefixes apart.

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
    fn ids_sort_by_number() {
        assert!(notice_id(9) < notice_id(10));
        assert!(instruction_id(99) < instruction_id(100));
    }
}
