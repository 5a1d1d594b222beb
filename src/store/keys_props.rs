//! Property tests of the store's codecs: the key layouts of [`super::keys`] (round trips,
//! byte order equal to the order of what they encode, time first for timers, prefixes that
//! keep institutions and cases apart) and the value encoding of [`super::encode`] /
//! [`super::decode`] (round trips of real records; arbitrary bytes give an error, never a
//! panic).

use proptest::collection::vec;
use proptest::prelude::*;

use super::keys::*;
use super::{DeliveryKind, OutboxEntry, TimerKind, decode, encode};
use crate::domain::blacklist::{DocumentType, Subject};
use crate::domain::instruction::InstructionRecord;
use crate::domain::instruction_model::{Amount, Reply, Start, Step, run};
use crate::domain::notice::NoticeRecord;
use crate::props_config::config;

/// Codes as the hub accepts them: A-Z, 0-9, '-' (never 0x00).
fn code() -> impl Strategy<Value = String> {
    "[A-Z0-9-]{1,16}"
}

/// Case references, account numbers, ids: anything without 0x00 (control characters are
/// refused at the edge; keep some here anyway, the separator is what matters).
fn part() -> impl Strategy<Value = String> {
    "[^\\x00]{0,24}"
}

fn kind() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(TimerKind::AnswerDue as u8),
        Just(TimerKind::TermEnd as u8),
        Just(TimerKind::RenewalReminder as u8),
        Just(TimerKind::ListingEnd as u8),
    ]
}

fn due() -> impl Strategy<Value = i64> {
    prop_oneof![0i64..10_000, 0..=i64::MAX]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn timer_keys_round_trip_and_sort_by_due_time_first(
        (d1, k1, id1) in (due(), kind(), part()),
        (d2, k2, id2) in (due(), kind(), part()),
    ) {
        let (a, b) = (timer(d1, k1, &id1), timer(d2, k2, &id2));
        prop_assert_eq!(parse_timer(&a), Some((d1, k1, id1.clone())));
        if d1 != d2 {
            prop_assert_eq!(a.cmp(&b), d1.cmp(&d2), "due time decides, whatever the kind and id");
        } else if k1 != k2 {
            prop_assert_eq!(a.cmp(&b), k1.cmp(&k2));
        } else {
            prop_assert_eq!(a.cmp(&b), id1.as_bytes().cmp(id2.as_bytes()));
        }
    }

    #[test]
    fn the_window_scanned_for_due_timers_holds_exactly_the_timers_due_in_it(
        d in due(), k in kind(), id in part(), from in due(), len in prop_oneof![0i64..5_000, 0..=i64::MAX],
    ) {
        // Store::timers_between scans [from as u64 BE, (to + 1) as u64 BE).
        let to = from.saturating_add(len);
        let key = timer(d, k, &id);
        let start = (from as u64).to_be_bytes();
        let end = (to as u64).saturating_add(1).to_be_bytes();
        let scanned = key.as_slice() >= start.as_slice() && key.as_slice() < end.as_slice();
        prop_assert_eq!(scanned, from <= d && d <= to);
    }

    #[test]
    fn instants_before_1970_clamp_to_the_first_key(d in i64::MIN..0, k in kind(), id in part()) {
        prop_assert_eq!(parse_timer(&timer(d, k, &id)), Some((0, k, id)));
    }

    #[test]
    fn delivery_keys_sort_by_sequence_and_never_interleave_institutions(
        i1 in code(), s1 in any::<u64>(), i2 in code(), s2 in any::<u64>(),
    ) {
        let (a, b) = (delivery(&i1, s1), delivery(&i2, s2));
        prop_assert_eq!(delivery_seq(&a), Some(s1));
        prop_assert!(a.starts_with(&institution_prefix(&i1)));
        prop_assert_eq!(a.starts_with(&institution_prefix(&i2)), i1 == i2);
        let expected = if i1 == i2 {
            s1.cmp(&s2)
        } else {
            institution_prefix(&i1).cmp(&institution_prefix(&i2))
        };
        prop_assert_eq!(a.cmp(&b), expected);
    }

    #[test]
    fn unacked_keys_sort_by_priority_then_sequence(
        inst in code(), (p1, s1) in (any::<u8>(), any::<u64>()), (p2, s2) in (any::<u8>(), any::<u64>()),
    ) {
        let (a, b) = (unacked(&inst, p1, s1), unacked(&inst, p2, s2));
        prop_assert_eq!(delivery_seq(&a), Some(s1));
        prop_assert_eq!(a.cmp(&b), (p1, s1).cmp(&(p2, s2)));
    }

    #[test]
    fn case_account_keys_round_trip_and_keep_cases_and_accounts_apart(
        agency in code(),
        (c1, c2) in (part(), part()),
        (inst, account, id) in (code(), part(), part()),
        other_account in part(),
    ) {
        let key = case_account(&agency, &c1, &inst, &account, &id);
        let prefix = case_prefix(&agency, &c1);
        prop_assert_eq!(
            parse_case_account(&key, prefix.len()),
            Some((inst.clone(), account.clone(), id.clone()))
        );
        prop_assert_eq!(key.starts_with(&case_prefix(&agency, &c2)), c1 == c2);
        prop_assert_eq!(
            key.starts_with(&case_account_prefix(&agency, &c1, &inst, &other_account)),
            account == other_account
        );
    }

    #[test]
    fn request_keys_are_one_to_one(a1 in code(), r1 in part(), a2 in code(), r2 in part()) {
        prop_assert_eq!(request(&a1, &r1) == request(&a2, &r2), a1 == a2 && r1 == r2);
    }

    #[test]
    fn id_order_is_number_order(a in 0u64..1_000_000_000_000, b in 0u64..1_000_000_000_000) {
        prop_assert_eq!(notice_id(a).cmp(&notice_id(b)), a.cmp(&b));
        prop_assert_eq!(instruction_id(a).cmp(&instruction_id(b)), a.cmp(&b));
    }

    #[test]
    fn key_parsers_take_arbitrary_bytes_without_panicking(bytes in vec(any::<u8>(), 0..64), at in 0usize..80) {
        // Keys the hub writes round trip; a corrupt one (a due time past i64::MAX) parses to
        // a negative instant that no key is written for, which the timer task fires at once.
        if let Some((due, kind, id)) = parse_timer(&bytes) {
            prop_assert_eq!(timer(due, kind, &id) == bytes, due >= 0);
        }
        if let Some(seq) = delivery_seq(&bytes) {
            prop_assert!(bytes.ends_with(&seq.to_be_bytes()));
        }
        if let Some((inst, account, id)) = parse_case_account(&bytes, at) {
            let joined = [inst, account, id].join("\0");
            prop_assert_eq!(&bytes[at..], joined.as_bytes());
        }
    }

    #[test]
    fn subject_keys_round_trip(n in "[0-9]{17}", passport in "[A-Z0-9]{5,20}") {
        // The check character that makes 17 digits a valid resident id, by the GB 11643 rule.
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = n.bytes().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
        let id = format!("{n}{}", b"10X98765432"[(sum % 11) as usize] as char);
        for (kind, number) in [(DocumentType::ResidentId, id), (DocumentType::Passport, passport)] {
            let subject = Subject::parse(kind, &number).map_err(TestCaseError::fail)?;
            prop_assert_eq!(Subject::from_key(&subject.key()), Some(subject));
        }
    }

    #[test]
    fn values_decode_arbitrary_bytes_to_an_error_not_a_panic(bytes in vec(any::<u8>(), 0..256)) {
        let record = decode::<InstructionRecord>(&bytes);
        let _ = decode::<NoticeRecord>(&bytes);
        let _ = decode::<OutboxEntry>(&bytes);
        if bytes.first() != Some(&1) {
            prop_assert!(record.is_err(), "only format 1 exists");
        }
    }

    #[test]
    fn records_round_trip_through_the_value_encoding(
        requested in 1u32..1_000_000,
        replies in vec((any::<bool>(), any::<u8>()), 0..6),
    ) {
        // Real records, as the state machine leaves them: stops and freezes, answered or not.
        let mut steps = vec![Step::SubmitStop, Step::SubmitFreeze, Step::Release { i: 0 }];
        for (all, i) in replies {
            let held = if all { Amount::All } else { Amount::AllBut(1) };
            steps.push(Step::Answer {
                i,
                reply: Reply::Stopped { partial: !all, held, balance: held, skew_minutes: 0, onward: Vec::new() },
            });
            steps.push(Step::Wait { minutes: 3_000 });
            steps.push(Step::TermEnded { i });
        }
        let start = Start { requested, receive_only: false, major: i64::from(requested) % 2 == 0, follow_depth: 1 };
        let records = run(&start, &steps).map_err(TestCaseError::fail)?;
        for rec in records {
            let bytes = encode(&rec);
            prop_assert_eq!(bytes[0], 1, "format version first");
            prop_assert_eq!(decode::<InstructionRecord>(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?, rec);
            let mut other = bytes.clone();
            other[0] = 2;
            prop_assert!(decode::<InstructionRecord>(&other).is_err(), "an unknown format is refused");
            let truncated = &bytes[..bytes.len() - 1];
            prop_assert!(decode::<InstructionRecord>(truncated).is_err(), "a truncated value is refused");
        }
        let entry = OutboxEntry { instruction_id: instruction_id(u64::from(requested)), kind: DeliveryKind::OverdueReminder };
        prop_assert_eq!(decode::<OutboxEntry>(&encode(&entry)).map_err(|e| TestCaseError::fail(e.to_string()))?, entry);
    }
}
