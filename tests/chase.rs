//! Following the money: next-level stops issued automatically from onward transfers, with the
//! amounts conserved along every path, cycles not stopped twice, unreachable hops shown, and
//! the case graph for police and oversight.

mod common;

use common::*;
use stophub::proto::stophub::bank::v1::SubscribeRequest;
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::GetCaseGraphRequest as OversightGraph;
use stophub::proto::stophub::police::v1::{FollowFunds, GetCaseGraphRequest, WatchNoticeRequest};
use tonic::Code;

const ORIGIN: &str = "6222020000001111";

fn chase_notice(
    hub: &TestHub,
    request_id: &str,
    follow: bool,
) -> stophub::proto::stophub::police::v1::SubmitNoticeRequest {
    let mut req = notice(hub, request_id, vec![suspect("ICBC", ORIGIN, 100_000)]);
    if follow {
        req.follow_funds = Some(FollowFunds {
            enabled: true,
            max_depth: 0,
        });
    }
    req
}

fn hop_results(i: &pb::Instruction) -> Vec<pb::HopResult> {
    i.hops
        .iter()
        .map(|h| pb::HopResult::try_from(h.result).unwrap())
        .collect()
}

#[tokio::test]
async fn a_three_level_chase_conserves_amounts_and_shows_in_the_graph() {
    let hub = TestHub::start().await;
    let n = submit(&hub, chase_notice(&hub, "c-1", true)).await;
    let root = n.instructions[0].instruction_id.clone();
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
    let t = now_ms(&hub) - 30 * MINUTE;

    // ICBC held 30,000 of 100,000; 90,000 left in two transfers: only 70,000 is chased.
    let answered = ack(
        &hub,
        "ICBC",
        &root,
        partial(
            30_000,
            now_ms(&hub),
            vec![
                onward("CCB", "6217000000002222", 50_000, t),
                onward("CMB", "6214800000003333", 40_000, t + MINUTE),
            ],
        ),
    )
    .await;
    assert_eq!(
        hop_results(&answered),
        [pb::HopResult::Followed, pb::HopResult::Followed]
    );
    let followed: Vec<i64> = answered
        .hops
        .iter()
        .map(|h| h.followed_amount_fen)
        .collect();
    assert_eq!(
        followed,
        [50_000, 20_000],
        "in time order, each at most its transfer, together at most what left"
    );

    // CCB receives its next-level stop, linked to its parent, at level 2.
    let mut ccb = hub.bank("CCB").await;
    let mut stream = ccb
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let child = next(&mut stream).await.instruction.unwrap();
    assert_eq!(
        (
            child.parent_instruction_id.as_str(),
            child.depth,
            child.account.as_ref().unwrap().amount_fen
        ),
        (root.as_str(), 2, 50_000)
    );
    assert_eq!(
        child.notice_id, n.notice_id,
        "next-level stops belong to the notice"
    );
    assert_eq!(child.action, pb::Action::StopPayment as i32);
    // The police watch sees the new instructions join.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        let ev = next(&mut watch).await.instruction.unwrap();
        if ev.depth == 2 {
            seen.insert(ev.instruction_id);
        }
    }

    // Level 2 -> level 3, capped by what CCB did not hold (40,000 of a 60,000 transfer).
    let level2 = ack(
        &hub,
        "CCB",
        &child.instruction_id,
        partial(
            10_000,
            now_ms(&hub),
            vec![onward("TENPAY", "1000000000004444", 60_000, t + 2 * MINUTE)],
        ),
    )
    .await;
    let level3_id = level2.hops[0].child_instruction_id.clone();
    let level3 = instruction(&hub, &level3_id).await;
    assert_eq!(
        (level3.depth, level3.account.as_ref().unwrap().amount_fen),
        (3, 40_000)
    );
    assert_eq!(
        level3.account.unwrap().account_kind,
        pb::AccountKind::PaymentAccount as i32
    );
    // Level 3 is the default depth: its onward transfers are recorded, not followed.
    let end = ack(
        &hub,
        "TENPAY",
        &level3_id,
        partial(
            1_000,
            now_ms(&hub),
            vec![onward("ALIPAY", "2088000000005555", 39_000, t + 3 * MINUTE)],
        ),
    )
    .await;
    assert_eq!(hop_results(&end), [pb::HopResult::DepthLimit]);

    // The graph, for police and for oversight.
    let graph = police
        .get_case_graph(GetCaseGraphRequest {
            case_reference: "SZ-2026-0001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .graph
        .unwrap();
    assert_eq!(graph.accounts.len(), 4);
    let node = |inst: &str| {
        graph
            .accounts
            .iter()
            .find(|a| a.institution_code == inst)
            .unwrap()
    };
    assert_eq!(
        (
            node("ICBC").requested_fen,
            node("ICBC").held_fen,
            node("ICBC").depth
        ),
        (100_000, 30_000, 1)
    );
    assert_eq!(
        (node("CCB").requested_fen, node("CCB").held_fen),
        (50_000, 10_000)
    );
    assert_eq!(
        (node("TENPAY").requested_fen, node("TENPAY").depth),
        (40_000, 3)
    );
    assert_eq!(graph.transfers.len(), 4);
    // Conservation along every path: what a level asks of the next never exceeds what it did not hold.
    for a in &graph.accounts {
        let out: i64 = graph
            .transfers
            .iter()
            .filter(|e| {
                e.from_institution_code == a.institution_code
                    && e.from_account_number == a.account_number
            })
            .map(|e| e.hop.as_ref().unwrap().followed_amount_fen)
            .sum();
        assert!(
            out <= a.requested_fen - a.held_fen,
            "{} asks {out} downstream",
            a.institution_code
        );
    }
    let mut oversight = hub.oversight("PBOC").await;
    let same = oversight
        .get_case_graph(OversightGraph {
            police_agency: "PSB-SZ".into(),
            case_reference: "SZ-2026-0001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .graph
        .unwrap();
    assert_eq!(same, graph);
    // Another agency cannot read this case; an unknown case is NOT_FOUND.
    let mut county = hub.police("PSB-SZ-NS").await;
    assert_eq!(
        county
            .get_case_graph(GetCaseGraphRequest {
                case_reference: "SZ-2026-0001".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    hub.stop().await;
}

#[tokio::test]
async fn money_returning_to_a_held_account_is_not_stopped_twice_and_unreachable_hops_are_shown() {
    let hub = TestHub::start().await;
    let n = submit(&hub, chase_notice(&hub, "c-2", true)).await;
    let root = n.instructions[0].instruction_id.clone();
    let t = now_ms(&hub) - 30 * MINUTE;
    let answered = ack(
        &hub,
        "ICBC",
        &root,
        partial(
            20_000,
            now_ms(&hub),
            vec![
                onward("CMB", "6214800000003333", 50_000, t),
                onward("NOBANK", "6000000000000001", 30_000, t),
            ],
        ),
    )
    .await;
    let results = hop_results(&answered);
    assert!(
        results.contains(&pb::HopResult::Unreachable) && results.contains(&pb::HopResult::Followed),
        "{results:?}"
    );
    let cmb_child = answered
        .hops
        .iter()
        .find(|h| h.result == pb::HopResult::Followed as i32)
        .unwrap()
        .child_instruction_id
        .clone();
    let unreachable = answered
        .hops
        .iter()
        .find(|h| h.result == pb::HopResult::Unreachable as i32)
        .unwrap();
    assert!(unreachable.child_instruction_id.is_empty());
    assert_eq!(
        unreachable.transfer.as_ref().unwrap().institution_code,
        "NOBANK"
    );

    // CMB's holder sent part of it back to the original ICBC account: recorded as a cycle.
    let back = ack(
        &hub,
        "CMB",
        &cmb_child,
        partial(
            10_000,
            now_ms(&hub),
            vec![onward("ICBC", ORIGIN, 40_000, t + MINUTE)],
        ),
    )
    .await;
    assert_eq!(hop_results(&back), [pb::HopResult::Cycle]);
    assert_eq!(
        back.hops[0].child_instruction_id, root,
        "the cycle points at the instruction already holding it"
    );
    // No second instruction went to ICBC.
    let mut icbc = hub.bank("ICBC").await;
    let mut stream = icbc
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    nothing_more(&mut stream).await;
    let graph = hub
        .police("PSB-SZ")
        .await
        .get_case_graph(GetCaseGraphRequest {
            case_reference: "SZ-2026-0001".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .graph
        .unwrap();
    assert_eq!(
        graph.accounts.len(),
        2,
        "the unreachable account has no instruction"
    );
    assert!(
        graph
            .transfers
            .iter()
            .any(|e| e.hop.as_ref().unwrap().result == pb::HopResult::Unreachable as i32)
    );
    hub.stop().await;
}

#[tokio::test]
async fn without_follow_funds_transfers_are_recorded_but_not_chased() {
    let hub = TestHub::start().await;
    let n = submit(&hub, chase_notice(&hub, "c-3", false)).await;
    let t = now_ms(&hub) - 30 * MINUTE;
    let answered = ack(
        &hub,
        "ICBC",
        &n.instructions[0].instruction_id,
        partial(
            20_000,
            now_ms(&hub),
            vec![onward("CMB", "6214800000003333", 50_000, t)],
        ),
    )
    .await;
    assert_eq!(hop_results(&answered), [pb::HopResult::NotRequested]);
    let mut cmb = hub.bank("CMB").await;
    let mut stream = cmb
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    nothing_more(&mut stream).await;
    // A transfer reported as leaving before the victim's transfer is refused.
    let n2 = submit(&hub, chase_notice(&hub, "c-4", true)).await;
    let mut bank = hub.bank("ICBC").await;
    let early = onward("CMB", "6214800000003333", 50_000, now_ms(&hub) - 2 * DAY);
    let err = bank
        .acknowledge(stophub::proto::stophub::bank::v1::AcknowledgeRequest {
            instruction_id: n2.instructions[0].instruction_id.clone(),
            outcome: Some(partial(20_000, now_ms(&hub), vec![early])),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("onward_transfers[0].time"),
        "{}",
        err.message()
    );
    hub.stop().await;
}
