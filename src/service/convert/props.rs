//! Property tests of request validation and conversion: random and garbage requests of every
//! kind the hub parses (notices, answers, listings, screenings, renewals, releases), and
//! arbitrary bytes decoded as them, run through [`super::checks`]: no panic, every refusal
//! names a field, every accepted request converts as sent and round trips through rendering.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use prost::Message;
use prost_types::Timestamp as PbTimestamp;

use super::checks::{self, Edge, NOW_SECONDS};
use crate::props_config::config;
use crate::proto::stophub::bank::v1 as bank;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1 as police;

/// Mostly well formed, sometimes padded, empty, too long or anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Za-z][A-Za-z -]{0,20}",
        1 => Just(String::new()),
        1 => " {1,3}[A-Za-z]{1,5} {1,3}",
        1 => ".{0,70}",
        1 => "[a-z]{64,70}",
    ]
}

fn request_id() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[A-Za-z0-9._:-]{1,64}", 1 => ".{0,70}", 1 => Just(String::new())]
}

fn code() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(vec!["ICBC", "CCB", "CMB", "ALIPAY", "TENPAY"]).prop_map(String::from),
        1 => "[A-Z0-9-]{0,17}",
        1 => ".{0,6}",
    ]
}

fn account_number() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[0-9]{6,32}",
        1 => "[0-9]{0,40}",
        1 => "[０-９]{6,12}",
        1 => ".{0,12}",
    ]
}

/// Amounts in fen, with the edges of the hub's range (1 to 10^12) and of i64.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 1..=1_000_000_000_000i64,
        1 => select(vec![0, -1, 1_000_000_000_001, i64::MIN, i64::MAX]),
        1 => any::<i64>(),
    ]
}

/// Mostly within ten days before the hub's clock; sometimes missing, ahead of it, or anything.
fn timestamp() -> impl Strategy<Value = Option<PbTimestamp>> {
    let near = (
        NOW_SECONDS - 10 * 86_400..NOW_SECONDS + 600,
        0..1_000_000_000i32,
    );
    prop_oneof![
        8 => near.prop_map(|(seconds, nanos)| Some(PbTimestamp { seconds, nanos })),
        1 => Just(None),
        1 => (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Some(PbTimestamp { seconds, nanos })),
    ]
}

/// An enum value: mostly one of the `n` defined, sometimes anything.
fn enum_value(n: i32) -> impl Strategy<Value = i32> {
    prop_oneof![8 => 0..n, 1 => any::<i32>()]
}

fn victim() -> impl Strategy<Value = pb::VictimTransfer> {
    (
        (code(), account_number(), text()),
        prop_oneof![8 => Just("CNY".to_string()), 1 => ".{0,4}"],
        (amount(), timestamp(), text()),
    )
        .prop_map(
            |(
                (institution_code, account_number, account_name),
                currency,
                (amount_fen, transfer_time, transaction_reference),
            )| {
                pb::VictimTransfer {
                    institution_code,
                    account_number,
                    account_name,
                    currency,
                    amount_fen,
                    transfer_time,
                    transaction_reference,
                }
            },
        )
}

fn suspect() -> impl Strategy<Value = pb::SuspectAccount> {
    (
        code(),
        account_number(),
        text(),
        enum_value(3),
        amount(),
        prop_oneof![4 => Just(String::new()), 1 => request_id()],
    )
        .prop_map(
            |(
                institution_code,
                account_number,
                account_name,
                account_kind,
                amount_fen,
                follows_instruction_id,
            )| {
                pb::SuspectAccount {
                    institution_code,
                    account_number,
                    account_name,
                    account_kind,
                    amount_fen,
                    follows_instruction_id,
                }
            },
        )
}

/// A notice that breaks no rule (a second account at one institution may repeat the first):
/// accepted notices exercise the round trip.
fn valid_notice() -> impl Strategy<Value = police::SubmitNoticeRequest> {
    let name = || "[A-Za-z][A-Za-z -]{0,20}";
    let past = || {
        (NOW_SECONDS - 10 * 86_400..NOW_SECONDS, 0..1_000_000_000i32)
            .prop_map(|(seconds, nanos)| Some(PbTimestamp { seconds, nanos }))
    };
    let fen = || 1..=1_000_000_000_000i64;
    let victim = (
        select(vec!["ICBC", "CCB", "CMB"]),
        "[0-9]{6,32}",
        name(),
        fen(),
        past(),
        name(),
    )
        .prop_map(
            |(code, number, holder, amount_fen, transfer_time, reference)| pb::VictimTransfer {
                institution_code: code.into(),
                account_number: number,
                account_name: holder,
                currency: "CNY".into(),
                amount_fen,
                transfer_time,
                transaction_reference: reference,
            },
        );
    let account = (
        select(vec![
            ("ICBC", pb::AccountKind::BankAccount),
            ("CCB", pb::AccountKind::BankAccount),
            ("ALIPAY", pb::AccountKind::PaymentAccount),
        ]),
        "[0-9]{6,32}",
        " {0,2}[A-Za-z]{1,10} {0,2}",
        fen(),
    )
        .prop_map(
            |((code, kind), number, holder, amount_fen)| pb::SuspectAccount {
                institution_code: code.into(),
                account_number: number,
                account_name: holder,
                account_kind: kind as i32,
                amount_fen,
                follows_instruction_id: String::new(),
            },
        );
    let freeze = (
        name(),
        past(),
        1..=2i32,
        prop::option::of(name().prop_map(|r| pb::MajorCaseApproval {
            approval_reference: r,
            approved_by: "PSB-SZ".into(),
        })),
    )
        .prop_map(|(case_number, filed_at, mode, major_case_approval)| {
            (
                pb::CaseFiling {
                    case_number,
                    filed_at,
                },
                pb::FreezeTerms {
                    mode,
                    major_case_approval,
                },
            )
        });
    (
        "[A-Za-z0-9._:-]{1,64}",
        name(),
        victim,
        vec(account, 1..4),
        prop::option::of(freeze),
        0u32..=5,
    )
        .prop_map(
            |(request_id, case_reference, victim, suspect_accounts, freeze, depth)| {
                police::SubmitNoticeRequest {
                    request_id,
                    case_reference,
                    action: if freeze.is_some() {
                        pb::Action::Freeze
                    } else {
                        pb::Action::StopPayment
                    } as i32,
                    victim_transfer: Some(victim),
                    suspect_accounts,
                    case_filing: freeze.as_ref().map(|f| f.0.clone()),
                    freeze: freeze.map(|f| f.1),
                    follow_funds: (depth > 0).then_some(police::FollowFunds {
                        enabled: true,
                        max_depth: depth,
                    }),
                }
            },
        )
}

fn notice() -> impl Strategy<Value = police::SubmitNoticeRequest> {
    prop_oneof![valid_notice(), any_notice()]
}

/// Any notice: every field mostly well formed, sometimes not.
fn any_notice() -> impl Strategy<Value = police::SubmitNoticeRequest> {
    let accounts = prop_oneof![
        20 => vec(suspect(), 0..4),
        1 => (suspect(), 195usize..210).prop_map(|(a, n)| vec![a; n]),
    ];
    let filing = prop::option::of((text(), timestamp()).prop_map(|(case_number, filed_at)| {
        pb::CaseFiling {
            case_number,
            filed_at,
        }
    }));
    let approval = prop::option::of(
        (
            text(),
            prop_oneof![
                select(vec!["PSB-SZ", "PSB-SZ-NS"]).prop_map(String::from),
                code()
            ],
        )
            .prop_map(|(approval_reference, approved_by)| pb::MajorCaseApproval {
                approval_reference,
                approved_by,
            }),
    );
    let freeze = prop::option::of((enum_value(3), approval).prop_map(
        |(mode, major_case_approval)| pb::FreezeTerms {
            mode,
            major_case_approval,
        },
    ));
    let follow = prop::option::of(
        (any::<bool>(), prop_oneof![4 => 0u32..7, 1 => any::<u32>()])
            .prop_map(|(enabled, max_depth)| police::FollowFunds { enabled, max_depth }),
    );
    (
        request_id(),
        text(),
        enum_value(6),
        prop::option::of(victim()),
        accounts,
        filing,
        freeze,
        follow,
    )
        .prop_map(
            |(
                request_id,
                case_reference,
                action,
                victim_transfer,
                suspect_accounts,
                case_filing,
                freeze,
                follow_funds,
            )| {
                police::SubmitNoticeRequest {
                    request_id,
                    case_reference,
                    action,
                    victim_transfer,
                    suspect_accounts,
                    case_filing,
                    freeze,
                    follow_funds,
                }
            },
        )
}

fn onward() -> impl Strategy<Value = Vec<pb::OnwardTransfer>> {
    vec(
        (
            code(),
            account_number(),
            text(),
            amount(),
            timestamp(),
            text(),
        )
            .prop_map(
                |(
                    institution_code,
                    account_number,
                    account_name,
                    amount_fen,
                    time,
                    transaction_reference,
                )| {
                    pb::OnwardTransfer {
                        institution_code,
                        account_number,
                        account_name,
                        amount_fen,
                        time,
                        transaction_reference,
                    }
                },
            ),
        0..3,
    )
}

fn answer() -> impl Strategy<Value = bank::AcknowledgeRequest> {
    use bank::acknowledge_request::Outcome as O;
    let held = || {
        (
            amount(),
            prop_oneof![amount(), Just(0)],
            timestamp(),
            onward(),
        )
    };
    let outcome = prop_oneof![
        held().prop_map(
            |(amount_held_fen, balance_fen, executed_at, onward_transfers)| {
                O::Executed(pb::Executed {
                    amount_held_fen,
                    balance_fen,
                    executed_at,
                    onward_transfers,
                })
            }
        ),
        held().prop_map(
            |(amount_held_fen, balance_fen, executed_at, onward_transfers)| {
                O::Partial(pb::Partial {
                    amount_held_fen,
                    balance_fen,
                    executed_at,
                    onward_transfers,
                })
            }
        ),
        (
            (
                amount(),
                amount(),
                amount(),
                prop_oneof![Just(0i64), amount()]
            ),
            text(),
            vec(
                (amount(), timestamp(), text()).prop_map(|(amount_fen, expires_at, authority)| {
                    pb::EarlierFreeze {
                        amount_fen,
                        expires_at,
                        authority,
                    }
                }),
                0..2
            ),
            timestamp(),
            onward(),
        )
            .prop_map(
                |(
                    (amount_frozen_fen, balance_fen, available_balance_fen, amount_not_frozen_fen),
                    not_frozen_reason,
                    earlier_freezes,
                    executed_at,
                    onward_transfers,
                )| {
                    O::Frozen(pb::Frozen {
                        amount_frozen_fen,
                        balance_fen,
                        available_balance_fen,
                        amount_not_frozen_fen,
                        not_frozen_reason,
                        earlier_freezes,
                        executed_at,
                        onward_transfers,
                    })
                }
            ),
        timestamp().prop_map(|executed_at| O::Done(pb::Done { executed_at })),
        (vec(enum_value(5), 0..5), text())
            .prop_map(|(fields, detail)| O::Mismatch(pb::Mismatch { fields, detail })),
        text().prop_map(|detail| O::AccountNotFound(pb::AccountNotFound { detail })),
        text().prop_map(|reason| O::Rejected(pb::Rejected { reason })),
    ];
    (request_id(), prop::option::of(outcome)).prop_map(|(instruction_id, outcome)| {
        bank::AcknowledgeRequest {
            instruction_id,
            outcome,
        }
    })
}

/// Document numbers: valid resident ids (their check character computed by the rule), other
/// digit strings, passports, credit codes, full-width and lower-case forms, garbage.
fn subject() -> impl Strategy<Value = pb::SubjectRef> {
    let resident = "[0-9]{17}".prop_map(|n| {
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = n
            .bytes()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        format!("{n}{}", b"10x98765432"[(sum % 11) as usize] as char)
    });
    let number = prop_oneof![
        3 => resident,
        1 => "[0-9Xx]{16,19}",
        1 => "[A-Za-z0-9]{3,22}",
        1 => "[0-9A-HJ-NP-RTUW-Y]{18}",
        1 => "[０-９Ａ-Ｚ]{5,18}",
        1 => ".{0,24}",
    ];
    (enum_value(4), number).prop_map(|(document_type, document_number)| pb::SubjectRef {
        document_type,
        document_number,
    })
}

fn listing() -> impl Strategy<Value = police::ListSubjectRequest> {
    (
        request_id(),
        prop::option::of(subject()),
        text(),
        prop_oneof![Just("PBOC-2019-ACCOUNT-TRADING".to_string()), text()],
        text(),
    )
        .prop_map(
            |(request_id, subject, subject_name, legal_basis, case_reference)| {
                police::ListSubjectRequest {
                    request_id,
                    subject,
                    subject_name,
                    legal_basis,
                    case_reference,
                }
            },
        )
}

fn screening() -> impl Strategy<Value = bank::CheckSubjectRequest> {
    prop_oneof![
        10 => vec(subject(), 0..6),
        1 => (subject(), 99usize..103).prop_map(|(s, n)| vec![s; n]),
    ]
    .prop_map(|subjects| bank::CheckSubjectRequest { subjects })
}

fn follow_ups() -> impl Strategy<Value = (police::RenewFreezeRequest, police::ReleaseRequest)> {
    (request_id(), request_id(), timestamp(), text()).prop_map(
        |(request_id, instruction_id, renew_until, reason)| {
            (
                police::RenewFreezeRequest {
                    request_id: request_id.clone(),
                    instruction_id: instruction_id.clone(),
                    renew_until,
                },
                police::ReleaseRequest {
                    request_id,
                    instruction_id,
                    reason,
                },
            )
        },
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn notices_are_refused_naming_a_field_or_accepted_as_sent(req in notice()) {
        checks::check_notice(&Edge::default(), &req).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn answers_are_refused_naming_a_field_or_accepted_as_sent(req in answer()) {
        checks::check_answer(&Edge::default(), &req).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn blacklist_requests_are_refused_naming_a_field_or_round_trip(l in listing(), s in screening()) {
        checks::check_listing(&l).map_err(TestCaseError::fail)?;
        checks::check_screening(&s).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn renewals_and_releases_are_refused_naming_a_field_or_accepted((renew, release) in follow_ups()) {
        checks::check_follow_ups(&renew, &release).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn arbitrary_bytes_decoded_as_any_request_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        checks::check_bytes(&Edge::default(), &bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn encoded_requests_with_bytes_flipped_never_panic(req in notice(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = req.encode_to_vec();
        for (at, byte) in flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        checks::check_bytes(&Edge::default(), &bytes).map_err(TestCaseError::fail)?;
    }
}

/// The generators reach acceptance, so the round trips above are exercised, not vacuous.
#[test]
fn the_generators_make_requests_that_are_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let edge = Edge::default();
    let mut runner = TestRunner::deterministic();
    let mut accepted = (0, 0, 0);
    for _ in 0..1_000 {
        let req = notice().new_tree(&mut runner).unwrap().current();
        accepted.0 +=
            usize::from(super::new_notice(&req, &edge.registry, &edge.config, edge.now).is_ok());
        let ack = answer().new_tree(&mut runner).unwrap().current();
        accepted.1 +=
            usize::from(super::outcome(ack.outcome.as_ref(), &edge.config, edge.now).is_ok());
        let l = listing().new_tree(&mut runner).unwrap().current();
        accepted.2 += usize::from(super::listing(&l).is_ok());
    }
    assert!(
        accepted.0 >= 250 && accepted.1 >= 100 && accepted.2 >= 20,
        "accepted of 1000: {accepted:?}"
    );
}
