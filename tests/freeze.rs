//! Freezes: a filed case first, terms in calendar months, partial and queued freezes, renewals
//! inside their window, reminders, lapse at expiry, and releases.

mod common;

use common::*;
use stophub::domain::ids::Timestamp;
use stophub::domain::policy::add_months;
use stophub::proto::stophub::bank::v1::{DeliveryKind, SubscribeRequest};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::{ListExpiringRequest, ListInstructionsRequest};
use stophub::proto::stophub::police::v1::{
    ReleaseRequest, RenewFreezeRequest, WatchEventKind, WatchNoticeRequest,
};
use tonic::Code;

fn months(from_ms: i64, n: u32) -> i64 {
    add_months(Timestamp::from_millis(from_ms), n).millis()
}

fn renewal(request_id: &str, id: &str) -> RenewFreezeRequest {
    RenewFreezeRequest {
        request_id: request_id.into(),
        instruction_id: id.into(),
        renew_until: None,
    }
}

/// A freeze of `account` at ICBC, answered in full now; returns (instruction id, expiry ms).
async fn frozen_account(hub: &TestHub, request_id: &str, account: &str) -> (String, i64) {
    let n = submit(
        hub,
        freeze_notice(hub, request_id, vec![suspect("ICBC", account, 50_000)]),
    )
    .await;
    let id = n.instructions[0].instruction_id.clone();
    assert_eq!(
        ms_of(n.instructions[0].answer_due_at.as_ref()) - now_ms(hub),
        30 * MINUTE,
        "freezes are due in 30 minutes by default"
    );
    let answered = ack(hub, "ICBC", &id, frozen(50_000, 0, vec![], now_ms(hub))).await;
    assert_eq!(state_of(&answered), pb::InstructionState::Executed);
    (id, ms_of(answered.effective_until.as_ref()))
}

#[tokio::test]
async fn a_freeze_needs_a_filed_case_and_a_city_level_approval_for_the_long_term() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let mut req = freeze_notice(
        &hub,
        "f-nocase",
        vec![suspect("ICBC", "6222020000001111", 50_000)],
    );
    req.case_filing = None;
    let err = police.submit_notice(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("filed case"), "{}", err.message());
    let mut req = freeze_notice(
        &hub,
        "f-nocase2",
        vec![suspect("ICBC", "6222020000001111", 50_000)],
    );
    req.case_filing.as_mut().unwrap().case_number.clear();
    assert_eq!(
        police.submit_notice(req).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut req = freeze_notice(
        &hub,
        "f-county",
        vec![suspect("ICBC", "6222020000001111", 50_000)],
    );
    req.freeze.as_mut().unwrap().major_case_approval = Some(pb::MajorCaseApproval {
        approval_reference: "A-1".into(),
        approved_by: "PSB-SZ-NS".into(),
    });
    let err = police.submit_notice(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("city-level"), "{}", err.message());
    let mut oversight = hub.oversight("PBOC").await;
    assert!(
        oversight
            .list_instructions(ListInstructionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .instructions
            .is_empty()
    );

    // Filed: six calendar months from execution; with a city-level major-case approval, twelve.
    let (_, expiry) = frozen_account(&hub, "f-ok", "6222020000001111").await;
    assert_eq!(expiry, months(now_ms(&hub), 6));
    let mut req = freeze_notice(
        &hub,
        "f-major",
        vec![suspect("ICBC", "6222020000001112", 50_000)],
    );
    req.freeze.as_mut().unwrap().major_case_approval = Some(pb::MajorCaseApproval {
        approval_reference: "SZ-MAJ-9".into(),
        approved_by: "PSB-SZ".into(),
    });
    let n = police
        .submit_notice(req)
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let answered = ack(
        &hub,
        "ICBC",
        &n.instructions[0].instruction_id,
        frozen(50_000, 0, vec![], now_ms(&hub)),
    )
    .await;
    assert_eq!(
        ms_of(answered.effective_until.as_ref()),
        months(now_ms(&hub), 12)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_partial_freeze_records_what_was_not_frozen_and_an_earlier_freeze_queues_it() {
    let hub = TestHub::start().await;
    let n = submit(
        &hub,
        freeze_notice(
            &hub,
            "f-part",
            vec![
                suspect("ICBC", "6222020000002221", 50_000),
                suspect("ICBC", "6222020000002222", 50_000),
            ],
        ),
    )
    .await;
    let partial = ack(
        &hub,
        "ICBC",
        &n.instructions[0].instruction_id,
        frozen(30_000, 20_000, vec![], now_ms(&hub)),
    )
    .await;
    assert_eq!(state_of(&partial), pb::InstructionState::Partial);
    let Some(pb::acknowledgement::Outcome::Frozen(f)) = partial.acknowledgement.unwrap().outcome
    else {
        panic!("frozen expected")
    };
    assert_eq!(
        (
            f.amount_frozen_fen,
            f.amount_not_frozen_fen,
            f.not_frozen_reason.as_str()
        ),
        (30_000, 20_000, "insufficient balance")
    );

    let earlier = pb::EarlierFreeze {
        amount_fen: 80_000,
        expires_at: Some(ts(now_ms(&hub) + 90 * DAY)),
        authority: "Guangzhou PSB".into(),
    };
    let queued = ack(
        &hub,
        "ICBC",
        &n.instructions[1].instruction_id,
        frozen(0, 50_000, vec![earlier], now_ms(&hub)),
    )
    .await;
    assert_eq!(state_of(&queued), pb::InstructionState::Queued);
    let Some(pb::acknowledgement::Outcome::Frozen(f)) = queued.acknowledgement.unwrap().outcome
    else {
        panic!("frozen expected")
    };
    assert_eq!(f.earlier_freezes[0].authority, "Guangzhou PSB");
    // Not frozen without a reason is refused.
    let other = submit(
        &hub,
        freeze_notice(
            &hub,
            "f-part2",
            vec![suspect("ICBC", "6222020000002223", 50_000)],
        ),
    )
    .await;
    let mut bad = frozen(30_000, 20_000, vec![], now_ms(&hub));
    if let AckOutcome::Frozen(f) = &mut bad {
        f.not_frozen_reason.clear();
    }
    let mut bank = hub.bank("ICBC").await;
    let err = bank
        .acknowledge(stophub::proto::stophub::bank::v1::AcknowledgeRequest {
            instruction_id: other.instructions[0].instruction_id.clone(),
            outcome: Some(bad),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("frozen.not_frozen_reason"),
        "{}",
        err.message()
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_timely_renewal_extends_the_freeze_and_a_late_one_is_refused() {
    let hub = TestHub::start().await;
    let (early, expiry) = frozen_account(&hub, "f-r1", "6222020000003331").await;
    let (late, _) = frozen_account(&hub, "f-r2", "6222020000003332").await;
    let mut police = hub.police("PSB-SZ").await;

    // Eleven days before expiry: inside the policy, accepted.
    advance(&hub, expiry - 11 * DAY - now_ms(&hub));
    let r = police
        .renew_freeze(renewal("ren-1", &early))
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    let ren = &r.instructions[0];
    assert_eq!(ren.action, pb::Action::RenewFreeze as i32);
    assert_eq!(ms_of(ren.renew_until.as_ref()), months(expiry, 6));
    // Beyond one term is refused.
    let mut too_long = renewal("ren-x", &late);
    too_long.renew_until = Some(ts(months(expiry, 6) + DAY));
    let err = police.renew_freeze(too_long).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("renew_until"), "{}", err.message());
    // The bank carries it out: the freeze runs to the new expiry.
    ack(&hub, "ICBC", &ren.instruction_id, done(now_ms(&hub))).await;
    let extended = eventually(std::time::Duration::from_secs(10), || async {
        let i = instruction(&hub, &early).await;
        (ms_of(i.effective_until.as_ref()) == months(expiry, 6)).then_some(i)
    })
    .await;
    assert_eq!(state_of(&extended), pb::InstructionState::Executed);

    // Five days before expiry: too late under the default policy.
    advance(&hub, 6 * DAY);
    let err = police
        .renew_freeze(renewal("ren-2", &late))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("at least 10 days"),
        "{}",
        err.message()
    );

    // At the old expiry the renewed freeze stays, the other lapses; a lapsed freeze cannot be renewed.
    advance(&hub, 5 * DAY + 1);
    wait_state(&hub, &late, pb::InstructionState::Lapsed).await;
    assert_eq!(
        state_of(&instruction(&hub, &early).await),
        pb::InstructionState::Executed
    );
    let err = police
        .renew_freeze(renewal("ren-3", &late))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // A released freeze cannot be renewed either.
    let rel = police
        .release(ReleaseRequest {
            request_id: "rel-f".into(),
            instruction_id: early.clone(),
            reason: "unrelated funds".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    assert_eq!(rel.instructions[0].action, pb::Action::ReleaseFreeze as i32);
    ack(
        &hub,
        "ICBC",
        &rel.instructions[0].instruction_id,
        done(now_ms(&hub)),
    )
    .await;
    wait_state(&hub, &early, pb::InstructionState::Released).await;
    assert_eq!(
        police
            .renew_freeze(renewal("ren-4", &early))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    hub.stop().await;
}

#[tokio::test]
async fn police_are_reminded_before_expiry_oversight_lists_it_and_an_unrenewed_freeze_lapses() {
    let hub = TestHub::start().await;
    let n = submit(
        &hub,
        freeze_notice(
            &hub,
            "f-rem",
            vec![suspect("ICBC", "6222020000004441", 50_000)],
        ),
    )
    .await;
    let id = n.instructions[0].instruction_id.clone();
    let answered = ack(&hub, "ICBC", &id, frozen(50_000, 0, vec![], now_ms(&hub))).await;
    let expiry = ms_of(answered.effective_until.as_ref());
    let mut police = hub.police("PSB-SZ").await;
    let mut watch = police
        .watch_notice(WatchNoticeRequest {
            notice_id: n.notice_id.clone(),
            until_answered: false,
        })
        .await
        .unwrap()
        .into_inner();
    next(&mut watch).await;
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 1 })
        .await
        .unwrap()
        .into_inner();

    let mut oversight = hub.oversight("PBOC").await;
    let soon = |hours| ListExpiringRequest {
        within_hours: hours,
        actions: vec![pb::Action::Freeze as i32],
        limit: 0,
    };
    assert!(
        oversight
            .list_expiring(soon(240))
            .await
            .unwrap()
            .into_inner()
            .instructions
            .is_empty()
    );
    advance(&hub, expiry - 10 * DAY - now_ms(&hub));
    let reminder = next(&mut watch).await;
    assert_eq!(reminder.kind, WatchEventKind::RenewalReminder as i32);
    assert_eq!(reminder.instruction.unwrap().instruction_id, id);
    let listed = oversight
        .list_expiring(soon(240))
        .await
        .unwrap()
        .into_inner()
        .instructions;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instruction_id, id);

    advance(&hub, 10 * DAY);
    let lapsed = loop {
        let ev = next(&mut watch).await;
        if state_of(ev.instruction.as_ref().unwrap()) == pb::InstructionState::Lapsed {
            break ev;
        }
    };
    assert_eq!(lapsed.kind, WatchEventKind::State as i32);
    let told = next(&mut stream).await;
    assert_eq!(
        (told.kind, told.instruction.unwrap().instruction_id),
        (DeliveryKind::Lapsed as i32, id)
    );
    assert!(
        oversight
            .list_expiring(soon(240))
            .await
            .unwrap()
            .into_inner()
            .instructions
            .is_empty()
    );
    hub.stop().await;
}
