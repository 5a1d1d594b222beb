//! Oversight reports against a scripted scenario with known answers: statistics per
//! institution, amounts, the case view, and blacklist figures.

mod common;

use common::*;
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::{
    AmountGrouping, DecideAppealRequest, GetAmountsRequest, GetBlacklistFiguresRequest,
    GetCaseRequest, GetStatsRequest, RecordAppealRequest,
};
use stophub::proto::stophub::police::v1::{
    DelistSubjectRequest, ListSubjectRequest, ReleaseRequest,
};

fn person(n: &str) -> pb::SubjectRef {
    pb::SubjectRef {
        document_type: pb::DocumentType::ResidentId as i32,
        document_number: n.into(),
    }
}

#[tokio::test]
async fn statistics_amounts_and_the_case_view_match_a_scripted_scenario() {
    let hub = TestHub::start().await;
    let n1 = submit(
        &hub,
        notice(
            &hub,
            "s-1",
            vec![
                suspect("ICBC", "6222020000000001", 10_000),
                suspect("ICBC", "6222020000000002", 20_000),
                suspect("CCB", "6217000000000004", 40_000),
            ],
        ),
    )
    .await;
    let n2 = submit(
        &hub,
        notice(
            &hub,
            "s-2",
            vec![suspect("ICBC", "6222020000000003", 30_000)],
        ),
    )
    .await;
    let (a, b, d) = (
        &n1.instructions[0].instruction_id,
        &n1.instructions[1].instruction_id,
        &n1.instructions[2].instruction_id,
    );
    let c = &n2.instructions[0].instruction_id;
    advance(&hub, MINUTE);
    ack(&hub, "ICBC", a, executed(10_000, now_ms(&hub))).await;
    advance(&hub, MINUTE);
    ack(&hub, "ICBC", b, partial(5_000, now_ms(&hub), vec![])).await;
    let mismatch = AckOutcome::Mismatch(pb::Mismatch {
        fields: vec![pb::MismatchField::Amount as i32],
        detail: String::new(),
    });
    ack(&hub, "CCB", d, mismatch).await;
    advance(&hub, 4 * MINUTE);
    wait_state(&hub, c, pb::InstructionState::Overdue).await;

    let mut oversight = hub.oversight("PBOC").await;
    let stats = oversight
        .get_stats(GetStatsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .institutions;
    let icbc = stats.iter().find(|s| s.institution_code == "ICBC").unwrap();
    assert_eq!(
        (
            icbc.received,
            icbc.answered,
            icbc.open,
            icbc.overdue,
            icbc.answered_late
        ),
        (3, 2, 1, 1, 0)
    );
    assert_eq!(
        (
            icbc.ack_p50_ms,
            icbc.ack_p95_ms,
            icbc.ack_p99_ms,
            icbc.ack_max_ms
        ),
        (60_000, 120_000, 120_000, 120_000)
    );
    let outcome = |s: &stophub::proto::stophub::oversight::v1::InstitutionStats,
                   state: pb::InstructionState| {
        s.outcomes
            .iter()
            .find(|o| o.state == state as i32 && o.action == pb::Action::StopPayment as i32)
            .map_or(0, |o| o.count)
    };
    assert_eq!(
        (
            outcome(icbc, pb::InstructionState::Executed),
            outcome(icbc, pb::InstructionState::Partial),
            outcome(icbc, pb::InstructionState::Overdue)
        ),
        (1, 1, 1)
    );
    let ccb = stats.iter().find(|s| s.institution_code == "CCB").unwrap();
    assert_eq!(
        (
            ccb.received,
            ccb.answered,
            ccb.ack_max_ms,
            outcome(ccb, pb::InstructionState::Mismatch)
        ),
        (1, 1, 120_000, 1)
    );
    // One institution only, and a window that excludes everything.
    let only = oversight
        .get_stats(GetStatsRequest {
            institution_code: "CCB".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only.institutions.len(), 1);
    let later = stophub::proto::stophub::oversight::v1::Window {
        from: Some(ts(now_ms(&hub))),
        to: None,
    };
    assert!(
        oversight
            .get_stats(GetStatsRequest {
                window: Some(later),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .institutions
            .is_empty()
    );

    // Release A: its 10,000 fen count as released.
    let mut police = hub.police("PSB-SZ").await;
    let rel = police
        .release(ReleaseRequest {
            request_id: "s-rel".into(),
            instruction_id: a.clone(),
            reason: "unrelated".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .notice
        .unwrap();
    ack(
        &hub,
        "ICBC",
        &rel.instructions[0].instruction_id,
        done(now_ms(&hub)),
    )
    .await;
    wait_state(&hub, a, pb::InstructionState::Released).await;
    let by = |group: AmountGrouping| GetAmountsRequest {
        group_by: group as i32,
        ..Default::default()
    };
    let rows = oversight
        .get_amounts(by(AmountGrouping::Institution))
        .await
        .unwrap()
        .into_inner()
        .rows;
    let row = |key: &str| rows.iter().find(|r| r.key == key).unwrap().clone();
    let icbc = row("ICBC");
    assert_eq!(
        (
            icbc.requested_fen,
            icbc.held_fen,
            icbc.not_held_fen,
            icbc.released_fen,
            icbc.instructions
        ),
        (60_000, 15_000, 15_000, 10_000, 3)
    );
    let ccb = row("CCB");
    assert_eq!(
        (ccb.requested_fen, ccb.held_fen, ccb.not_held_fen),
        (40_000, 0, 40_000)
    );
    let cases = oversight
        .get_amounts(by(AmountGrouping::Case))
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert_eq!(
        (cases.len(), cases[0].key.as_str(), cases[0].requested_fen),
        (1, "PSB-SZ/SZ-2026-0001", 100_000)
    );
    assert_eq!(
        oversight
            .get_amounts(by(AmountGrouping::Day))
            .await
            .unwrap()
            .into_inner()
            .rows
            .len(),
        1
    );
    // Pages.
    let first = oversight
        .get_amounts(GetAmountsRequest {
            group_by: AmountGrouping::Institution as i32,
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            first.rows.len(),
            first.rows[0].key.as_str(),
            first.next_page_token.as_str()
        ),
        (1, "CCB", "CCB")
    );
    let second = oversight
        .get_amounts(GetAmountsRequest {
            group_by: AmountGrouping::Institution as i32,
            page_size: 1,
            page_token: first.next_page_token,
            window: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (second.rows[0].key.as_str(), second.next_page_token.as_str()),
        ("ICBC", "")
    );
    assert_eq!(
        oversight
            .get_amounts(GetAmountsRequest::default())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::InvalidArgument
    );

    // The case view: its notices, instructions, graph and audit records.
    let view = oversight
        .get_case(GetCaseRequest {
            police_agency: "PSB-SZ".into(),
            case_reference: "SZ-2026-0001".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        view.notice_ids,
        vec![
            n1.notice_id.clone(),
            n2.notice_id.clone(),
            rel.notice_id.clone()
        ]
    );
    assert_eq!(view.instructions.len(), 5);
    assert_eq!(view.graph.unwrap().accounts.len(), 4);
    assert!(view.audit.iter().any(|r| r.action == "submit_notice"));
    assert!(
        view.audit
            .iter()
            .any(|r| r.action == "acknowledge" && r.actor == "bank:CCB")
    );
    assert!(
        view.audit
            .iter()
            .any(|r| r.action == "fire_timers" && r.actor == "hub"),
        "the overdue escalation is in the trail"
    );
    hub.stop().await;
}

#[tokio::test]
async fn blacklist_figures_count_entries_by_basis_and_changes_in_a_period() {
    let hub = TestHub::start().await;
    let mut police = hub.police("PSB-SZ").await;
    let list = |id: &str, rid: &str, basis: &str| ListSubjectRequest {
        request_id: rid.into(),
        subject: Some(person(id)),
        subject_name: String::new(),
        legal_basis: basis.into(),
        case_reference: "SZ-2026-0001".into(),
    };
    police
        .list_subject(list(
            "11010519491231002X",
            "f-1",
            "PBOC-2019-ACCOUNT-TRADING",
        ))
        .await
        .unwrap();
    police
        .list_subject(list("440305199001010018", "f-2", "JPM-2024-IDENTIFIED"))
        .await
        .unwrap();
    police
        .delist_subject(DelistSubjectRequest {
            subject: Some(person("11010519491231002X")),
            reason: "error".into(),
        })
        .await
        .unwrap();
    let mut oversight = hub.oversight("PBOC").await;
    let appeal = oversight
        .record_appeal(RecordAppealRequest {
            request_id: "f-ap".into(),
            subject: Some(person("440305199001010018")),
            grounds: "mistake".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .appeal
        .unwrap();
    oversight
        .decide_appeal(DecideAppealRequest {
            appeal_id: appeal.appeal_id,
            upheld: false,
            reason: "no evidence".into(),
        })
        .await
        .unwrap();
    let f = oversight
        .get_blacklist_figures(GetBlacklistFiguresRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (f.listings, f.delistings, f.extensions, f.lapses),
        (2, 1, 0, 0),
        "{f:?}"
    );
    assert_eq!(
        (f.appeals_recorded, f.appeals_dismissed, f.appeals_upheld),
        (1, 1, 0)
    );
    assert_eq!(f.in_force_by_basis.len(), 1);
    assert_eq!(
        (
            f.in_force_by_basis[0].legal_basis.as_str(),
            f.in_force_by_basis[0].in_force
        ),
        ("JPM-2024-IDENTIFIED", 1)
    );
    hub.stop().await;
}
