//! Deadlines on the hub's clock: overdue escalation and late answers, the 48-hour lapse, the
//! two-stop limit, releases, delivery priority, and timers that survive a restart. The clock is
//! moved, never waited for.

mod common;

use common::*;
use stophub::proto::stophub::bank::v1::{DeliveryKind, SubscribeRequest};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::ListInstructionsRequest;
use stophub::proto::stophub::police::v1::{ReleaseRequest, WatchEventKind, WatchNoticeRequest};
use tonic::Code;

fn stop(
    hub: &TestHub,
    request_id: &str,
    account: &str,
) -> stophub::proto::stophub::police::v1::SubmitNoticeRequest {
    notice(hub, request_id, vec![suspect("ICBC", account, 10_000)])
}

#[tokio::test]
async fn an_unanswered_stop_becomes_overdue_is_escalated_and_a_late_answer_still_counts() {
    let hub = TestHub::start().await;
    let n = submit(&hub, stop(&hub, "r-overdue", "6222020000001111")).await;
    let id = n.instructions[0].instruction_id.clone();
    let due = ms_of(n.instructions[0].answer_due_at.as_ref());
    assert_eq!(
        due - now_ms(&hub),
        5 * MINUTE,
        "stop-payments are due in 5 minutes by default"
    );

    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert!(!first.urgent);
    let mut police = hub.police("PSB-SZ").await;
    let mut watch = police
        .watch_notice(WatchNoticeRequest {
            notice_id: n.notice_id.clone(),
            until_answered: true,
        })
        .await
        .unwrap()
        .into_inner();
    next(&mut watch).await;

    // Not yet due: nothing happens.
    advance(&hub, 4 * MINUTE);
    nothing_more(&mut stream).await;
    assert_eq!(
        state_of(&instruction(&hub, &id).await),
        pb::InstructionState::Delivered
    );

    advance(&hub, MINUTE + 1_000);
    let overdue = wait_state(&hub, &id, pb::InstructionState::Overdue).await;
    assert!(overdue.overdue_at.is_some());
    // The institution's stream marks it urgent, the police watch and oversight see it at once.
    let reminder = next(&mut stream).await;
    assert_eq!(reminder.kind, DeliveryKind::OverdueReminder as i32);
    assert!(reminder.urgent);
    assert_eq!(reminder.instruction.unwrap().instruction_id, id);
    let seen = loop {
        let ev = next(&mut watch).await.instruction.unwrap();
        if state_of(&ev) == pb::InstructionState::Overdue {
            break ev;
        }
    };
    assert_eq!(seen.instruction_id, id);
    let mut oversight = hub.oversight("PBOC").await;
    let listed = oversight
        .list_instructions(ListInstructionsRequest {
            states: vec![pb::InstructionState::Overdue as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.instructions.len(), 1);

    // A reconnecting bank gets it flagged urgent too.
    let mut again = bank
        .subscribe(SubscribeRequest { after_sequence: 2 })
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut again).await.urgent);

    // The late answer counts and records how late it was.
    advance(&hub, 30_000);
    let answered = ack(&hub, "ICBC", &id, executed(10_000, now_ms(&hub))).await;
    assert_eq!(state_of(&answered), pb::InstructionState::Executed);
    let late = answered.acknowledgement.unwrap().late_by_ms;
    assert_eq!(
        late,
        MINUTE + 31_000 - MINUTE,
        "late by the time since the deadline"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_stop_lapses_48_hours_after_its_execution_time_and_both_sides_are_told() {
    let hub = TestHub::start().await;
    let n = submit(&hub, stop(&hub, "r-lapse", "6222020000002222")).await;
    let id = n.instructions[0].instruction_id.clone();
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    // Executed two minutes ago by the bank's clock: within the skew, so the term runs from then.
    let executed_at = now_ms(&hub) - 2 * MINUTE;
    let answered = ack(&hub, "ICBC", &id, executed(10_000, executed_at)).await;
    assert_eq!(
        ms_of(answered.effective_until.as_ref()),
        executed_at + 48 * HOUR
    );
    assert_eq!(
        answered
            .acknowledgement
            .as_ref()
            .unwrap()
            .execution_time_discrepancy_ms,
        0
    );

    advance(&hub, 48 * HOUR - 3 * MINUTE);
    nothing_more(&mut stream).await;
    assert_eq!(
        state_of(&instruction(&hub, &id).await),
        pb::InstructionState::Executed
    );
    advance(&hub, 2 * MINUTE);
    wait_state(&hub, &id, pb::InstructionState::Lapsed).await;
    let told = next(&mut stream).await;
    assert_eq!(told.kind, DeliveryKind::Lapsed as i32);
    assert_eq!(told.instruction.unwrap().instruction_id, id);
    // The police watch (until final) ends with the lapse.
    let mut police = hub.police("PSB-SZ").await;
    let mut watch = police
        .watch_notice(WatchNoticeRequest {
            notice_id: n.notice_id,
            until_answered: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        state_of(&next(&mut watch).await.instruction.unwrap()),
        pb::InstructionState::Lapsed
    );
    assert!(
        watch.message().await.unwrap().is_none(),
        "the watch ends when every instruction is final"
    );
    hub.stop().await;
}

#[tokio::test]
async fn an_execution_time_outside_the_skew_is_replaced_by_the_hubs_receipt_time() {
    let hub = TestHub::start().await;
    let n = submit(&hub, stop(&hub, "r-skew", "6222020000003333")).await;
    let id = n.instructions[0].instruction_id.clone();
    let claimed = now_ms(&hub) - 3 * HOUR;
    let answered = ack(&hub, "ICBC", &id, executed(10_000, claimed)).await;
    let now = now_ms(&hub);
    assert_eq!(ms_of(answered.effective_until.as_ref()), now + 48 * HOUR);
    assert_eq!(
        answered
            .acknowledgement
            .unwrap()
            .execution_time_discrepancy_ms,
        claimed - now
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_third_stop_on_one_account_in_one_case_is_refused_pointing_to_the_freeze() {
    let hub = TestHub::start().await;
    let account = "6222020000004444";
    let first = submit(&hub, stop(&hub, "r-s1", account)).await;
    ack(
        &hub,
        "ICBC",
        &first.instructions[0].instruction_id,
        executed(10_000, now_ms(&hub)),
    )
    .await;
    advance(&hub, 48 * HOUR);
    wait_state(
        &hub,
        &first.instructions[0].instruction_id,
        pb::InstructionState::Lapsed,
    )
    .await;
    submit(&hub, stop(&hub, "r-s2", account)).await;
    let mut police = hub.police("PSB-SZ").await;
    let err = police
        .submit_notice(stop(&hub, "r-s3", account))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("two-stop limit") && err.message().contains("freeze"),
        "{}",
        err.message()
    );
    // Another case may still stop it; a stop that stopped nothing does not count.
    let mut other_case = stop(&hub, "r-s4", account);
    other_case.case_reference = "SZ-2026-0002".into();
    police.submit_notice(other_case).await.unwrap();
    let mut fresh = stop(&hub, "r-m1", "6222020000004445");
    fresh.case_reference = "SZ-2026-0003".into();
    let mismatched = police
        .submit_notice(fresh.clone())
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let mismatch = AckOutcome::Mismatch(pb::Mismatch {
        fields: vec![pb::MismatchField::AccountName as i32],
        detail: String::new(),
    });
    ack(
        &hub,
        "ICBC",
        &mismatched.instructions[0].instruction_id,
        mismatch,
    )
    .await;
    for r in ["r-m2", "r-m3"] {
        fresh.request_id = r.into();
        police.submit_notice(fresh.clone()).await.unwrap();
    }
    fresh.request_id = "r-m4".into();
    assert_eq!(
        police.submit_notice(fresh).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_release_goes_to_the_bank_and_ends_the_stop_and_bad_releases_are_refused() {
    let hub = TestHub::start().await;
    let n = submit(&hub, stop(&hub, "r-rel", "6222020000005555")).await;
    let stop_id = n.instructions[0].instruction_id.clone();
    ack(&hub, "ICBC", &stop_id, executed(10_000, now_ms(&hub))).await;
    let mut police = hub.police("PSB-SZ").await;
    let release = |request_id: &str, id: &str| ReleaseRequest {
        request_id: request_id.into(),
        instruction_id: id.into(),
        reason: "funds unrelated".into(),
    };
    let rel = police
        .release(release("rel-1", &stop_id))
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let rel_instr = &rel.instructions[0];
    assert_eq!(rel_instr.action, pb::Action::ReleaseStop as i32);
    assert_eq!(rel_instr.references_instruction_id, stop_id);
    // While it is pending, a second release is refused.
    let err = police
        .release(release("rel-2", &stop_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The bank receives it and carries it out; the stop is RELEASED.
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    let got = next(&mut stream).await.instruction.unwrap();
    assert_eq!(got.instruction_id, rel_instr.instruction_id);
    let carried = ack(&hub, "ICBC", &rel_instr.instruction_id, done(now_ms(&hub))).await;
    assert_eq!(state_of(&carried), pb::InstructionState::Executed);
    wait_state(&hub, &stop_id, pb::InstructionState::Released).await;
    // Releasing it again, an unknown one, or another agency's is refused.
    assert_eq!(
        police
            .release(release("rel-3", &stop_id))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        police
            .release(release("rel-4", "I999999999999"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let mut county = hub.police("PSB-SZ-NS").await;
    let other = submit(&hub, stop(&hub, "r-rel-b", "6222020000005556")).await;
    assert_eq!(
        county
            .release(release("rel-5", &other.instructions[0].instruction_id))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // A lapsed stop cannot be released.
    ack(
        &hub,
        "ICBC",
        &other.instructions[0].instruction_id,
        executed(10_000, now_ms(&hub)),
    )
    .await;
    advance(&hub, 48 * HOUR + 1);
    wait_state(
        &hub,
        &other.instructions[0].instruction_id,
        pb::InstructionState::Lapsed,
    )
    .await;
    let err = police
        .release(release("rel-6", &other.instructions[0].instruction_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("Lapsed"), "{}", err.message());
    hub.stop().await;
}

#[tokio::test]
async fn stops_and_releases_are_delivered_before_freezes_in_a_backlog() {
    let hub = TestHub::start().await;
    let freeze = submit(
        &hub,
        freeze_notice(
            &hub,
            "r-pf",
            vec![suspect("ICBC", "6222020000006661", 5_000)],
        ),
    )
    .await;
    let stop = submit(&hub, stop(&hub, "r-ps", "6222020000006662")).await;
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let a = next(&mut stream).await.instruction.unwrap();
    let b = next(&mut stream).await.instruction.unwrap();
    assert_eq!(
        a.instruction_id, stop.instructions[0].instruction_id,
        "the stop comes first though submitted later"
    );
    assert_eq!(b.instruction_id, freeze.instructions[0].instruction_id);
    hub.stop().await;
}

#[tokio::test]
async fn a_timer_scheduled_before_a_restart_fires_at_its_due_time_after_it() {
    let hub = TestHub::start().await;
    let n = submit(&hub, stop(&hub, "r-restart", "6222020000007777")).await;
    let id = n.instructions[0].instruction_id.clone();
    let hub = hub.restart().await;
    advance(&hub, 5 * MINUTE - 1_000);
    // Nearly due: still waiting (give the timer task a moment to misfire if it would).
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 1 })
        .await
        .unwrap()
        .into_inner();
    assert!(!next(&mut stream).await.urgent);
    nothing_more(&mut stream).await;
    assert_ne!(
        state_of(&instruction(&hub, &id).await),
        pb::InstructionState::Overdue
    );
    advance(&hub, 2_000);
    wait_state(&hub, &id, pb::InstructionState::Overdue).await;

    // And a term timer across a restart: executed, restarted, then 48 hours on.
    ack(&hub, "ICBC", &id, executed(10_000, now_ms(&hub))).await;
    let hub = hub.restart().await;
    advance(&hub, 48 * HOUR);
    wait_state(&hub, &id, pb::InstructionState::Lapsed).await;
    // The watch reports reminders as their own kind: none for a stop.
    let mut police = hub.police("PSB-SZ").await;
    let mut watch = police
        .watch_notice(WatchNoticeRequest {
            notice_id: n.notice_id,
            until_answered: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watch).await.kind, WatchEventKind::State as i32);
    hub.stop().await;
}
