//! Fuzz target: the store's codecs. Arbitrary bytes given to every value decoder and key
//! parser must give an error or a value, never a panic, and a decoded value must encode and
//! decode to itself; keys built from arbitrary parts must parse back to them and sort as
//! what they encode (timers by due time first, deliveries by institution then sequence).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stophub::domain::instruction::InstructionRecord;
use stophub::domain::notice::NoticeRecord;
use stophub::store::{BlacklistChange, CheckRecord, OutboxEntry, decode, encode, keys};

#[derive(Debug, Arbitrary)]
struct Input {
    bytes: Vec<u8>,
    prefix_len: usize,
    timers: Vec<(i64, u8, String)>,
    deliveries: Vec<(String, u8, u64)>,
    case: [String; 5],
}

/// A decoded value encodes to bytes that decode to it again.
fn stable<V>(bytes: &[u8])
where
    V: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = decode::<V>(bytes) {
        let again: V = decode(&encode(&value)).expect("a re-encoded value decodes");
        assert_eq!(again, value);
    }
}

fn no_nul(s: &str) -> bool {
    !s.contains('\0')
}

fuzz_target!(|input: Input| {
    let bytes = &input.bytes;
    stable::<InstructionRecord>(bytes);
    stable::<NoticeRecord>(bytes);
    stable::<OutboxEntry>(bytes);
    stable::<BlacklistChange>(bytes);
    stable::<CheckRecord>(bytes);
    let _ = keys::parse_timer(bytes);
    let _ = keys::delivery_seq(bytes);
    let _ = keys::parse_case_account(bytes, input.prefix_len);

    let mut timers: Vec<(Vec<u8>, (i64, u8, String))> = input
        .timers
        .into_iter()
        .map(|(due, kind, id)| {
            let key = keys::timer(due, kind, &id);
            let expected = (due.max(0), kind, id);
            assert_eq!(keys::parse_timer(&key).as_ref(), Some(&expected));
            (key, expected)
        })
        .collect();
    timers.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        timers
            .windows(2)
            .all(|w| (w[0].1.0, w[0].1.1, w[0].1.2.as_bytes())
                <= (w[1].1.0, w[1].1.1, w[1].1.2.as_bytes())),
        "timer keys sort by due time, then kind, then id"
    );

    let mut deliveries: Vec<(Vec<u8>, Vec<u8>, u8, u64)> = input
        .deliveries
        .into_iter()
        .filter(|(institution, _, _)| no_nul(institution))
        .map(|(institution, priority, seq)| {
            let key = keys::unacked(&institution, priority, seq);
            assert_eq!(keys::delivery_seq(&key), Some(seq));
            assert_eq!(
                keys::delivery_seq(&keys::delivery(&institution, seq)),
                Some(seq)
            );
            (key, keys::institution_prefix(&institution), priority, seq)
        })
        .collect();
    deliveries.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        deliveries.windows(2).all(|w| {
            let (a, b) = (&w[0], &w[1]);
            // Within one institution: priority, then sequence.
            a.1 != b.1 || (a.2, a.3) <= (b.2, b.3)
        }),
        "unacked keys sort by priority then sequence within an institution"
    );

    let [agency, case, institution, account, id] = &input.case;
    if [agency, case, institution, account]
        .iter()
        .all(|s| no_nul(s))
    {
        let key = keys::case_account(agency, case, institution, account, id);
        let prefix = keys::case_prefix(agency, case);
        assert!(key.starts_with(&prefix));
        assert_eq!(
            keys::parse_case_account(&key, prefix.len()),
            Some((institution.clone(), account.clone(), id.clone()))
        );
    }
});
