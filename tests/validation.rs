//! Bad input is refused with the right code, a message naming the field and the rule, and
//! nothing stored.

mod common;

use common::*;
use stophub::proto::stophub::bank::v1::acknowledge_request::Outcome as AckOutcome;
use stophub::proto::stophub::bank::v1::{AcknowledgeRequest, SubscribeRequest};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::ListInstructionsRequest;
use stophub::proto::stophub::police::v1::SubmitNoticeRequest;
use tonic::Code;

type Mutation = Box<dyn Fn(&mut SubmitNoticeRequest)>;

fn victim(r: &mut SubmitNoticeRequest) -> &mut pb::VictimTransfer {
    r.victim_transfer.as_mut().unwrap()
}

fn cases(now: i64) -> Vec<(&'static str, Mutation, Code, &'static str)> {
    let many = |n: usize| -> Vec<pb::SuspectAccount> {
        (0..n)
            .map(|i| suspect("ICBC", &format!("62220200{i:08}"), 100))
            .collect()
    };
    vec![
        (
            "empty request id",
            Box::new(|r| r.request_id.clear()),
            Code::InvalidArgument,
            "request_id",
        ),
        (
            "request id with spaces",
            Box::new(|r| r.request_id = "a b".into()),
            Code::InvalidArgument,
            "request_id",
        ),
        (
            "oversized request id",
            Box::new(|r| r.request_id = "x".repeat(65)),
            Code::InvalidArgument,
            "request_id",
        ),
        (
            "empty case reference",
            Box::new(|r| r.case_reference = "  ".into()),
            Code::InvalidArgument,
            "case_reference",
        ),
        (
            "oversized case reference",
            Box::new(|r| r.case_reference = "案".repeat(65)),
            Code::InvalidArgument,
            "case_reference",
        ),
        (
            "no action",
            Box::new(|r| r.action = 0),
            Code::InvalidArgument,
            "action",
        ),
        (
            "unknown action",
            Box::new(|r| r.action = 99),
            Code::InvalidArgument,
            "action",
        ),
        (
            "no victim transfer",
            Box::new(|r| r.victim_transfer = None),
            Code::InvalidArgument,
            "victim_transfer",
        ),
        (
            "victim currency USD",
            Box::new(|r| victim(r).currency = "USD".into()),
            Code::InvalidArgument,
            "victim_transfer.currency",
        ),
        (
            "victim amount zero",
            Box::new(|r| victim(r).amount_fen = 0),
            Code::InvalidArgument,
            "victim_transfer.amount_fen",
        ),
        (
            "victim amount negative",
            Box::new(|r| victim(r).amount_fen = -5),
            Code::InvalidArgument,
            "victim_transfer.amount_fen",
        ),
        (
            "victim amount overflowing the maximum",
            Box::new(|r| victim(r).amount_fen = i64::MAX),
            Code::InvalidArgument,
            "victim_transfer.amount_fen",
        ),
        (
            "transfer time in the future",
            Box::new(move |r| victim(r).transfer_time = Some(ts(now + 3_600_000))),
            Code::InvalidArgument,
            "victim_transfer.transfer_time",
        ),
        (
            "transfer time missing",
            Box::new(|r| victim(r).transfer_time = None),
            Code::InvalidArgument,
            "victim_transfer.transfer_time",
        ),
        (
            "unknown victim institution",
            Box::new(|r| victim(r).institution_code = "NOBANK".into()),
            Code::InvalidArgument,
            "NOBANK",
        ),
        (
            "victim account with letters",
            Box::new(|r| victim(r).account_number = "62170000ABCD".into()),
            Code::InvalidArgument,
            "victim_transfer.account_number",
        ),
        (
            "empty victim name",
            Box::new(|r| victim(r).account_name.clear()),
            Code::InvalidArgument,
            "victim_transfer.account_name",
        ),
        (
            "empty transaction reference",
            Box::new(|r| victim(r).transaction_reference.clear()),
            Code::InvalidArgument,
            "victim_transfer.transaction_reference",
        ),
        (
            "no suspect accounts",
            Box::new(|r| r.suspect_accounts.clear()),
            Code::InvalidArgument,
            "suspect_accounts",
        ),
        (
            "201 suspect accounts",
            Box::new(move |r| r.suspect_accounts = many(201)),
            Code::InvalidArgument,
            "at most 200",
        ),
        (
            "unregistered suspect institution",
            Box::new(|r| r.suspect_accounts[0].institution_code = "GHOST".into()),
            Code::InvalidArgument,
            "GHOST",
        ),
        (
            "lower-case institution code",
            Box::new(|r| r.suspect_accounts[0].institution_code = "icbc".into()),
            Code::InvalidArgument,
            "suspect_accounts[0].institution_code",
        ),
        (
            "account number too short",
            Box::new(|r| r.suspect_accounts[0].account_number = "12345".into()),
            Code::InvalidArgument,
            "suspect_accounts[0].account_number",
        ),
        (
            "account number too long",
            Box::new(|r| r.suspect_accounts[0].account_number = "1".repeat(33)),
            Code::InvalidArgument,
            "suspect_accounts[0].account_number",
        ),
        (
            "full-width digits",
            Box::new(|r| r.suspect_accounts[0].account_number = "６２２２０２１２３４５６".into()),
            Code::InvalidArgument,
            "full-width",
        ),
        (
            "suspect amount zero",
            Box::new(|r| r.suspect_accounts[0].amount_fen = 0),
            Code::InvalidArgument,
            "suspect_accounts[0].amount_fen",
        ),
        (
            "suspect amount above the maximum",
            Box::new(|r| r.suspect_accounts[0].amount_fen = 1_000_000_000_001),
            Code::InvalidArgument,
            "suspect_accounts[0].amount_fen",
        ),
        (
            "no account kind",
            Box::new(|r| r.suspect_accounts[0].account_kind = 0),
            Code::InvalidArgument,
            "suspect_accounts[0].account_kind",
        ),
        (
            "payment account at a bank",
            Box::new(|r| {
                r.suspect_accounts[0].account_kind = pb::AccountKind::PaymentAccount as i32
            }),
            Code::InvalidArgument,
            "suspect_accounts[0].account_kind",
        ),
        (
            "empty suspect name",
            Box::new(|r| r.suspect_accounts[0].account_name.clear()),
            Code::InvalidArgument,
            "suspect_accounts[0].account_name",
        ),
        (
            "control character in a name",
            Box::new(|r| r.suspect_accounts[0].account_name = "Wang\u{7}Wu".into()),
            Code::InvalidArgument,
            "suspect_accounts[0].account_name",
        ),
        (
            "the same account twice",
            Box::new(|r| {
                let dup = r.suspect_accounts[0].clone();
                r.suspect_accounts.push(dup)
            }),
            Code::InvalidArgument,
            "suspect_accounts[2]",
        ),
        (
            "error in the second account",
            Box::new(|r| r.suspect_accounts[1].amount_fen = -1),
            Code::InvalidArgument,
            "suspect_accounts[1].amount_fen",
        ),
    ]
}

#[tokio::test]
async fn every_invalid_notice_is_refused_naming_the_field_and_nothing_is_stored() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let base = notice(
        &hub,
        "req-valid",
        vec![
            suspect("ICBC", "6222020000001111", 1_000),
            suspect("ALIPAY", "2088000000001111", 1_000),
        ],
    );
    let table = cases(now_ms(&hub));
    assert!(table.len() >= 20);
    for (name, mutate, code, needle) in &table {
        let mut req = base.clone();
        mutate(&mut req);
        let err = police.submit_notice(req).await.expect_err(name);
        assert_eq!(err.code(), *code, "{name}: {err:?}");
        assert!(
            err.message().contains(needle),
            "{name}: message {:?} should name {needle:?}",
            err.message()
        );
    }
    // Nothing was stored: no instruction exists, no bank stream has anything, and the request
    // id that every refused variant carried is still free.
    let mut oversight = hub.oversight("PBOC").await;
    let all = oversight
        .list_instructions(ListInstructionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.instructions.is_empty());
    let mut icbc = hub.bank("ICBC").await;
    let mut stream = icbc
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    nothing_more(&mut stream).await;
    let ok = police.submit_notice(base).await.unwrap().into_inner();
    assert!(
        !ok.replayed,
        "the request id was not taken by a refused request"
    );
    assert_eq!(
        next(&mut stream).await.sequence,
        1,
        "refused requests used no sequence numbers"
    );
    hub.stop().await;
}

#[tokio::test]
async fn invalid_acknowledgements_are_refused_and_change_nothing() {
    let hub = TestHub::start().await;
    let n = submit(
        &hub,
        notice(
            &hub,
            "req-ack-bad",
            vec![suspect("ICBC", "6222020000001111", 10_000)],
        ),
    )
    .await;
    let id = n.instructions[0].instruction_id.clone();
    let now = now_ms(&hub);
    let exec = |held: i64, balance: i64, at: Option<i64>| {
        AckOutcome::Executed(pb::Executed {
            amount_held_fen: held,
            balance_fen: balance,
            executed_at: at.map(ts),
            ..Default::default()
        })
    };
    let table: Vec<(&str, String, Option<AckOutcome>, Code, &str)> = vec![
        (
            "no outcome",
            id.clone(),
            None,
            Code::InvalidArgument,
            "outcome",
        ),
        (
            "no instruction id",
            String::new(),
            Some(exec(10_000, 0, Some(now))),
            Code::InvalidArgument,
            "instruction_id",
        ),
        (
            "executed for less than requested",
            id.clone(),
            Some(exec(9_000, 0, Some(now))),
            Code::InvalidArgument,
            "executed.amount_held_fen",
        ),
        (
            "negative balance",
            id.clone(),
            Some(exec(10_000, -1, Some(now))),
            Code::InvalidArgument,
            "executed.balance_fen",
        ),
        (
            "no execution time",
            id.clone(),
            Some(exec(10_000, 0, None)),
            Code::InvalidArgument,
            "executed.executed_at",
        ),
        (
            "execution time in the future",
            id.clone(),
            Some(exec(10_000, 0, Some(now + 3_600_000))),
            Code::InvalidArgument,
            "executed.executed_at",
        ),
        (
            "partial for the whole amount",
            id.clone(),
            Some(AckOutcome::Partial(pb::Partial {
                amount_held_fen: 10_000,
                balance_fen: 10_000,
                executed_at: Some(ts(now)),
                ..Default::default()
            })),
            Code::InvalidArgument,
            "partial.amount_held_fen",
        ),
        (
            "mismatch naming nothing",
            id.clone(),
            Some(AckOutcome::Mismatch(pb::Mismatch {
                fields: vec![],
                detail: String::new(),
            })),
            Code::InvalidArgument,
            "mismatch.fields",
        ),
        (
            "mismatch naming a field twice",
            id.clone(),
            Some(AckOutcome::Mismatch(pb::Mismatch {
                fields: vec![1, 1],
                detail: String::new(),
            })),
            Code::InvalidArgument,
            "mismatch.fields[1]",
        ),
        (
            "rejected without a reason",
            id.clone(),
            Some(AckOutcome::Rejected(pb::Rejected {
                reason: String::new(),
            })),
            Code::InvalidArgument,
            "rejected.reason",
        ),
    ];
    let mut bank = hub.bank("ICBC").await;
    for (name, instruction_id, outcome, code, needle) in table {
        let err = bank
            .acknowledge(AcknowledgeRequest {
                instruction_id,
                outcome,
            })
            .await
            .expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err:?}");
        assert!(
            err.message().contains(needle),
            "{name}: {:?} should name {needle:?}",
            err.message()
        );
    }
    // Still unanswered: the stream delivers it and a valid answer is the first one.
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let got = next(&mut stream).await.instruction.unwrap();
    assert!(got.acknowledgement.is_none());
    let ok = bank
        .acknowledge(AcknowledgeRequest {
            instruction_id: id,
            outcome: Some(exec(10_000, 0, Some(now))),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.duplicate);
    hub.stop().await;
}
