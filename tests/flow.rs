//! The core path end to end: police notice -> bank stream -> acknowledgement -> police watch
//! -> oversight; idempotent submission; redelivery and resume; restart on the same data.

mod common;

use std::time::Duration;

use common::*;
use stophub::proto::stophub::bank::v1::{AcknowledgeRequest, SubscribeRequest};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::{GetInstructionRequest, ListInstructionsRequest};
use stophub::proto::stophub::police::v1::{GetNoticeRequest, WatchNoticeRequest};
use tonic::Code;

fn state(i: &pb::Instruction) -> pb::InstructionState {
    pb::InstructionState::try_from(i.state).unwrap()
}

#[tokio::test]
async fn the_whole_path_reaches_exactly_the_named_banks() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let mut icbc = hub.bank("ICBC").await;
    let mut alipay = hub.bank("ALIPAY").await;
    let mut ccb = hub.bank("CCB").await;
    let mut icbc_stream = icbc
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut alipay_stream = alipay
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut ccb_stream = ccb
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();

    let req = notice(
        &hub,
        "req-1",
        vec![
            suspect("ICBC", "6222020000001111", 3_000_000),
            suspect("ALIPAY", "2088000000002222", 2_000_000),
        ],
    );
    let answer = police.submit_notice(req).await.unwrap().into_inner();
    assert!(!answer.replayed);
    let n = answer.notice.unwrap();
    assert_eq!(n.instructions.len(), 2);
    assert_eq!(n.police_agency, "PSB-SZ");
    assert!(
        n.instructions
            .iter()
            .all(|i| state(i) == pb::InstructionState::Pending)
    );

    let mut watch = police
        .watch_notice(WatchNoticeRequest {
            notice_id: n.notice_id.clone(),
            // An executed stop stays in force (not final) for 48 hours: end once answered.
            until_answered: true,
        })
        .await
        .unwrap()
        .into_inner();
    // Initial state: one event per instruction.
    for _ in 0..2 {
        assert!(next(&mut watch).await.initial);
    }

    let got = next(&mut icbc_stream).await;
    let inst = got.instruction.unwrap();
    assert_eq!(got.sequence, 1);
    assert_eq!(
        inst.account.as_ref().unwrap().account_number,
        "6222020000001111"
    );
    assert_eq!(
        inst.victim_transfer.as_ref().unwrap().transaction_reference,
        "CCB-TX-778899"
    );
    assert!(!got.redelivery);
    let got_alipay = next(&mut alipay_stream).await.instruction.unwrap();
    assert_eq!(got_alipay.account.unwrap().institution_code, "ALIPAY");
    nothing_more(&mut ccb_stream).await;
    nothing_more(&mut icbc_stream).await;

    let now = now_ms(&hub);
    let acked = icbc
        .acknowledge(AcknowledgeRequest {
            instruction_id: inst.instruction_id.clone(),
            outcome: Some(executed(3_000_000, now)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!acked.duplicate);
    assert_eq!(
        state(acked.instruction.as_ref().unwrap()),
        pb::InstructionState::Executed
    );

    // The watch sees the delivery and the answer.
    let seen = loop {
        let ev = next(&mut watch).await.instruction.unwrap();
        if ev.instruction_id == inst.instruction_id && state(&ev) == pb::InstructionState::Executed
        {
            break ev;
        }
    };
    let ack = seen.acknowledgement.unwrap();
    assert!(
        matches!(ack.outcome, Some(pb::acknowledgement::Outcome::Executed(ref e)) if e.amount_held_fen == 3_000_000)
    );

    // Alipay answers MISMATCH; then the watch ends because every instruction is final.
    let mismatch =
        stophub::proto::stophub::bank::v1::acknowledge_request::Outcome::Mismatch(pb::Mismatch {
            fields: vec![pb::MismatchField::AccountName as i32],
            detail: "holder name differs".into(),
        });
    alipay
        .acknowledge(AcknowledgeRequest {
            instruction_id: got_alipay.instruction_id.clone(),
            outcome: Some(mismatch),
        })
        .await
        .unwrap();
    let mut last_states = std::collections::HashMap::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
    {
        let i = ev.instruction.unwrap();
        last_states.insert(i.instruction_id.clone(), state(&i));
    }
    assert_eq!(
        last_states.get(&got_alipay.instruction_id),
        Some(&pb::InstructionState::Mismatch)
    );

    // Police read it back; oversight lists it.
    let got = police
        .get_notice(GetNoticeRequest {
            notice_id: n.notice_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let states: Vec<_> = got.instructions.iter().map(state).collect();
    assert_eq!(
        states,
        vec![
            pb::InstructionState::Executed,
            pb::InstructionState::Mismatch
        ]
    );

    let mut oversight = hub.oversight("PBOC").await;
    let listed = oversight
        .list_instructions(ListInstructionsRequest {
            institution_code: "ICBC".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.instructions.len(), 1);
    assert_eq!(listed.instructions[0].instruction_id, inst.instruction_id);
    let by_state = oversight
        .list_instructions(ListInstructionsRequest {
            states: vec![pb::InstructionState::Mismatch as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_state.instructions.len(), 1);
    assert_eq!(
        by_state.instructions[0].instruction_id,
        got_alipay.instruction_id
    );
    let one = oversight
        .get_instruction(GetInstructionRequest {
            instruction_id: inst.instruction_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        state(one.instruction.as_ref().unwrap()),
        pb::InstructionState::Executed
    );
    hub.stop().await;
}

#[tokio::test]
async fn resubmission_is_idempotent_and_a_reused_request_id_is_refused() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let req = notice(
        &hub,
        "req-idem",
        vec![suspect("ICBC", "6222020000003333", 1_000)],
    );
    let first = police
        .submit_notice(req.clone())
        .await
        .unwrap()
        .into_inner();
    let again = police
        .submit_notice(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.notice, again.notice);

    let mut changed = req.clone();
    changed.suspect_accounts[0].amount_fen = 2_000;
    let err = police.submit_notice(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("request_id"), "{}", err.message());

    // Exactly one instruction exists, and the bank gets exactly one.
    let mut oversight = hub.oversight("PBOC").await;
    let all = oversight
        .list_instructions(ListInstructionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.instructions.len(), 1);
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    nothing_more(&mut stream).await;

    // Another agency may use the same request id for its own notice.
    let mut other = hub.police("PSB-SZ-NS").await;
    let theirs = other.submit_notice(req).await.unwrap().into_inner();
    assert!(!theirs.replayed);
    assert_ne!(
        theirs.notice.unwrap().notice_id,
        first.notice.unwrap().notice_id
    );
    hub.stop().await;
}

#[tokio::test]
async fn unacknowledged_instructions_come_again_and_resume_skips_what_was_acknowledged() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let req = notice(
            &hub,
            &format!("req-r{n}"),
            vec![suspect("CMB", &format!("62148000000000{n:02}"), 500)],
        );
        let answer = police.submit_notice(req).await.unwrap().into_inner();
        ids.push(
            answer.notice.unwrap().instructions[0]
                .instruction_id
                .clone(),
        );
    }

    // First connection: receive all four, acknowledge only #1 and #3, then disconnect.
    let mut bank = hub.bank("CMB").await;
    {
        let mut stream = bank
            .subscribe(SubscribeRequest { after_sequence: 0 })
            .await
            .unwrap()
            .into_inner();
        let seqs: Vec<u64> = [
            next(&mut stream).await,
            next(&mut stream).await,
            next(&mut stream).await,
            next(&mut stream).await,
        ]
        .iter()
        .map(|m| m.sequence)
        .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
    }
    let now = now_ms(&hub);
    for id in [&ids[0], &ids[2]] {
        bank.acknowledge(AcknowledgeRequest {
            instruction_id: id.clone(),
            outcome: Some(executed(500, now)),
        })
        .await
        .unwrap();
    }

    // Reconnect from 0: only the two never acknowledged, flagged as redeliveries.
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let a = next(&mut stream).await;
    let b = next(&mut stream).await;
    assert_eq!((a.sequence, b.sequence), (2, 4));
    assert!(a.redelivery && b.redelivery);
    nothing_more(&mut stream).await;
    drop(stream);

    // Resume after 3: #2 again (never acknowledged, at or before the cursor), then #4; never #1 or #3.
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 3 })
        .await
        .unwrap()
        .into_inner();
    let a = next(&mut stream).await;
    let b = next(&mut stream).await;
    assert_eq!(
        (
            a.instruction.unwrap().instruction_id,
            b.instruction.unwrap().instruction_id
        ),
        (ids[1].clone(), ids[3].clone())
    );
    nothing_more(&mut stream).await;

    // New work arrives live on the same stream.
    let req = notice(
        &hub,
        "req-r-live",
        vec![suspect("CMB", "6214800000000099", 500)],
    );
    police.submit_notice(req).await.unwrap();
    let live = next(&mut stream).await;
    assert_eq!(live.sequence, 5);
    assert!(!live.redelivery);

    // A cursor at the last sequence issued: unacknowledged ones still come.
    let mut current = bank
        .subscribe(SubscribeRequest { after_sequence: 5 })
        .await
        .unwrap()
        .into_inner();
    let seqs = [
        next(&mut current).await.sequence,
        next(&mut current).await.sequence,
        next(&mut current).await.sequence,
    ];
    assert_eq!(seqs, [2, 4, 5]);
    // A cursor from the future (nothing was ever sent there) is refused, naming the field.
    let err = bank
        .subscribe(SubscribeRequest {
            after_sequence: 1_000,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(
        err.message().contains("after_sequence"),
        "{}",
        err.message()
    );
    hub.stop().await;
}

#[tokio::test]
async fn acknowledgements_are_idempotent_and_a_different_answer_is_refused() {
    let hub = TestHub::start().await;
    let n = submit(
        &hub,
        notice(
            &hub,
            "req-ack",
            vec![suspect("ICBC", "6222020000004444", 10_000)],
        ),
    )
    .await;
    let id = n.instructions[0].instruction_id.clone();
    let mut bank = hub.bank("ICBC").await;
    let now = now_ms(&hub);
    let first = bank
        .acknowledge(AcknowledgeRequest {
            instruction_id: id.clone(),
            outcome: Some(executed(10_000, now)),
        })
        .await
        .unwrap()
        .into_inner();
    let again = bank
        .acknowledge(AcknowledgeRequest {
            instruction_id: id.clone(),
            outcome: Some(executed(10_000, now)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.instruction, again.instruction);
    let rejected =
        stophub::proto::stophub::bank::v1::acknowledge_request::Outcome::Rejected(pb::Rejected {
            reason: "changed mind".into(),
        });
    let err = bank
        .acknowledge(AcknowledgeRequest {
            instruction_id: id.clone(),
            outcome: Some(rejected),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = bank
        .acknowledge(AcknowledgeRequest {
            instruction_id: "I999999999999".into(),
            outcome: Some(executed(10_000, now)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    hub.stop().await;
}

#[tokio::test]
async fn a_restarted_hub_loses_nothing_and_streams_resume() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let mut notices = Vec::new();
    for n in 0..3 {
        let req = notice(
            &hub,
            &format!("req-restart-{n}"),
            vec![
                suspect("ICBC", &format!("62220200000055{n:02}"), 700),
                suspect("TENPAY", &format!("1000000000{n:02}"), 300),
            ],
        );
        notices.push(
            police
                .submit_notice(req)
                .await
                .unwrap()
                .into_inner()
                .notice
                .unwrap(),
        );
    }
    let mut bank = hub.bank("ICBC").await;
    let now = now_ms(&hub);
    bank.acknowledge(AcknowledgeRequest {
        instruction_id: notices[0].instructions[0].instruction_id.clone(),
        outcome: Some(executed(700, now)),
    })
    .await
    .unwrap();
    drop((police, bank));

    let hub = hub.restart().await;
    let mut police = hub.police("PSB-SZ").await;
    for n in &notices {
        let got = police
            .get_notice(GetNoticeRequest {
                notice_id: n.notice_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .notice
            .unwrap();
        assert_eq!(got.instructions.len(), 2);
    }
    let first = police
        .get_notice(GetNoticeRequest {
            notice_id: notices[0].notice_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    assert_eq!(
        state(&first.instructions[0]),
        pb::InstructionState::Executed
    );
    // An identical retry after the restart is still recognised.
    let retry = police
        .submit_notice(notice(
            &hub,
            "req-restart-0",
            vec![
                suspect("ICBC", "6222020000005500", 700),
                suspect("TENPAY", "100000000000", 300),
            ],
        ))
        .await;
    // The victim transfer time is relative to the clock, which did not move: same payload.
    assert!(retry.unwrap().into_inner().replayed);

    // ICBC resumes: two unacknowledged remain; TENPAY gets all three.
    let mut icbc = hub.bank("ICBC").await;
    let mut stream = icbc
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        [
            next(&mut stream).await.sequence,
            next(&mut stream).await.sequence
        ],
        [2, 3]
    );
    nothing_more(&mut stream).await;
    let mut tenpay = hub.bank("TENPAY").await;
    let mut stream = tenpay
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        [
            next(&mut stream).await.sequence,
            next(&mut stream).await.sequence,
            next(&mut stream).await.sequence
        ],
        [1, 2, 3]
    );

    // New work after the restart continues the sequence.
    police
        .submit_notice(notice(
            &hub,
            "req-after",
            vec![suspect("TENPAY", "100000000099", 300)],
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut stream).await.sequence, 4);
    hub.stop().await;
}
