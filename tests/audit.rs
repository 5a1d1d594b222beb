//! The audit trail: every change and every refusal that reached the rules, with its actor,
//! chained by hash; verified through the API, offline, after a restart, and after tampering.

mod common;

use std::process::Command;

use common::*;
use stophub::proto::stophub::bank::v1::CheckSubjectRequest;
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::{
    AuditRecord, StreamAuditRequest, VerifyAuditRequest, VerifyAuditResponse,
};
use stophub::proto::stophub::police::v1::ListSubjectRequest;
use stophub::store::{Store, TreeId};

async fn audit_records(hub: &TestHub) -> Vec<AuditRecord> {
    let mut oversight = hub.oversight("PBOC").await;
    let mut stream = oversight
        .stream_audit(StreamAuditRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Ok(Ok(Some(r))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), stream.message()).await
    {
        out.push(r);
    }
    out
}

async fn verify(hub: &TestHub) -> VerifyAuditResponse {
    hub.oversight("PBOC")
        .await
        .verify_audit(VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// A small scripted scenario: a notice, an answer, a refused answer, a listing, a check.
async fn scenario(hub: &TestHub) {
    let n = submit(
        hub,
        notice(
            hub,
            "a-1",
            vec![suspect("ICBC", "6222020000001111", 10_000)],
        ),
    )
    .await;
    let id = n.instructions[0].instruction_id.clone();
    ack(hub, "ICBC", &id, executed(10_000, now_ms(hub))).await;
    let mut bank = hub.bank("ICBC").await;
    let refused = bank
        .acknowledge(stophub::proto::stophub::bank::v1::AcknowledgeRequest {
            instruction_id: id.clone(),
            outcome: Some(AckOutcome::Rejected(pb::Rejected {
                reason: "changed our mind".into(),
            })),
        })
        .await;
    assert!(refused.is_err());
    hub.police("PSB-SZ")
        .await
        .list_subject(ListSubjectRequest {
            request_id: "a-l".into(),
            subject: Some(pb::SubjectRef {
                document_type: pb::DocumentType::ResidentId as i32,
                document_number: "11010519491231002X".into(),
            }),
            subject_name: String::new(),
            legal_basis: "PBOC-2019-ACCOUNT-TRADING".into(),
            case_reference: "SZ-2026-0001".into(),
        })
        .await
        .unwrap();
    bank.check_subject(CheckSubjectRequest {
        subjects: vec![pb::SubjectRef {
            document_type: pb::DocumentType::ResidentId as i32,
            document_number: "11010519491231002X".into(),
        }],
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_change_and_refusal_is_recorded_with_its_actor_and_the_chain_verifies() {
    let hub = TestHub::start().await;
    scenario(&hub).await;
    let records = eventually(std::time::Duration::from_secs(10), || async {
        let r = audit_records(&hub).await;
        (r.iter().any(|r| r.action == "check_subject")).then_some(r)
    })
    .await;
    let find = |action: &str| {
        records
            .iter()
            .find(|r| r.action == action)
            .unwrap_or_else(|| panic!("no {action} in {records:#?}"))
    };
    let submitted = find("submit_notice");
    assert_eq!(
        (submitted.actor.as_str(), submitted.outcome.as_str()),
        ("police:PSB-SZ", "ok")
    );
    assert!(
        submitted.items.iter().any(|i| i.kind == "notice")
            && submitted.items.iter().any(|i| i.kind == "instruction")
    );
    let answered = records
        .iter()
        .find(|r| r.action == "acknowledge" && r.outcome == "ok")
        .unwrap();
    assert_eq!(answered.actor, "bank:ICBC");
    assert!(
        answered.items[0].detail.contains("Executed"),
        "{:?}",
        answered.items
    );
    let refused = records
        .iter()
        .find(|r| r.action == "acknowledge" && r.outcome.starts_with("refused"))
        .unwrap();
    assert!(
        refused.outcome.contains("only the identical answer"),
        "{}",
        refused.outcome
    );
    assert!(refused.items.is_empty());
    let listed = find("list_subject");
    assert_eq!(listed.items[0].kind, "blacklist");
    let checked = find("check_subject");
    assert_eq!(
        (checked.actor.as_str(), checked.items[0].detail.as_str()),
        ("bank:ICBC", "answered: listed")
    );
    // Positions without gaps, each linked to the one before.
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        if i > 0 {
            assert_eq!(r.prev_hash, records[i - 1].hash);
        }
    }
    let v = verify(&hub).await;
    assert!(v.intact, "{v:?}");
    assert_eq!(
        (v.count, v.head_hash.as_str()),
        (records.len() as u64, records.last().unwrap().hash.as_str())
    );

    // After a restart the chain is intact and continues.
    let hub = hub.restart().await;
    let again = verify(&hub).await;
    assert_eq!(
        (again.intact, again.count, again.head_hash),
        (true, v.count, v.head_hash.clone())
    );
    submit(
        &hub,
        notice(&hub, "a-2", vec![suspect("CCB", "6217000000001111", 500)]),
    )
    .await;
    let after = verify(&hub).await;
    assert!(after.intact && after.count == v.count + 1);
    hub.stop().await;
}

/// Stops the hub, applies `tamper` to its audit tree, and returns what verification says,
/// offline, through the CLI, and through the API after a restart.
async fn tampered(
    tamper: impl FnOnce(&sled::Tree),
) -> (
    stophub::audit::Verdict,
    i32,
    VerifyAuditResponse,
    Vec<serde_json::Value>,
) {
    let hub = TestHub::start().await;
    scenario(&hub).await;
    eventually(std::time::Duration::from_secs(10), || async {
        (verify(&hub).await.count >= 5).then_some(())
    })
    .await;
    let (dir, clock) = hub.stop().await;
    let data = dir.path().join("data");
    {
        let store = Store::open(&data).unwrap();
        tamper(store.tree(TreeId::Audit));
        store.sync().unwrap();
    }
    let offline = stophub::audit::verify(&Store::open(&data).unwrap()).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_stophub"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let export = Command::new(env!("CARGO_BIN_EXE_stophub"))
        .args(["audit", "export", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(export.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let hub = TestHub::start_in(dir, clock).await;
    let api = verify(&hub).await;
    hub.stop().await;
    (offline, cli.status.code().unwrap_or(-1), api, lines)
}

fn key(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

#[tokio::test]
async fn a_changed_record_on_disk_is_detected() {
    let (offline, cli, api, _) = tampered(|tree| {
        let mut r: stophub::audit::AuditRecord =
            stophub::store::decode(&tree.get(key(2)).unwrap().unwrap()).unwrap();
        r.actor = "bank:CCB".into();
        tree.insert(key(2), stophub::store::encode(&r)).unwrap();
    })
    .await;
    assert!(
        matches!(offline, stophub::audit::Verdict::Broken { at_seq: 2, .. }),
        "{offline:?}"
    );
    assert_eq!(cli, 4);
    assert!(
        !api.intact && api.broken_at_seq == 2 && api.problem.contains("changed"),
        "{api:?}"
    );
}

#[tokio::test]
async fn a_removed_record_is_detected() {
    let (offline, cli, api, _) = tampered(|tree| {
        tree.remove(key(3)).unwrap();
    })
    .await;
    assert!(
        matches!(offline, stophub::audit::Verdict::Broken { at_seq: 3, .. }),
        "{offline:?}"
    );
    assert_eq!(cli, 4);
    assert!(
        !api.intact && api.broken_at_seq == 3 && api.problem.contains("missing"),
        "{api:?}"
    );
}

#[tokio::test]
async fn two_swapped_records_are_detected() {
    let (offline, cli, api, _) = tampered(|tree| {
        let (a, b) = (
            tree.get(key(2)).unwrap().unwrap(),
            tree.get(key(3)).unwrap().unwrap(),
        );
        tree.insert(key(2), b).unwrap();
        tree.insert(key(3), a).unwrap();
    })
    .await;
    assert!(
        matches!(offline, stophub::audit::Verdict::Broken { at_seq: 2, .. }),
        "{offline:?}"
    );
    assert_eq!(cli, 4);
    assert!(!api.intact && api.broken_at_seq == 2, "{api:?}");
}

#[tokio::test]
async fn an_untouched_store_verifies_offline_and_exports_as_json_lines() {
    let (offline, cli, api, lines) = tampered(|_| {}).await;
    assert!(
        matches!(offline, stophub::audit::Verdict::Intact { .. }),
        "{offline:?}"
    );
    assert_eq!(cli, 0);
    assert!(api.intact);
    assert_eq!(lines.len() as u64, api.count);
    assert_eq!(lines.last().unwrap()["hash"], api.head_hash.as_str());
    assert_eq!(lines[0]["actor"], "police:PSB-SZ");
}
