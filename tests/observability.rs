//! Operational visibility: the Prometheus endpoint scraped and parsed, request logs with the
//! caller and outcome and no identity or account numbers in the clear, and the healthcheck
//! subcommand.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use stophub::proto::stophub::bank::v1::SubscribeRequest;
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::police::v1::ListSubjectRequest;

#[tokio::test]
async fn the_metrics_endpoint_reports_requests_backlogs_streams_and_the_blacklist() {
    let hub = TestHub::start().await;
    submit(
        &hub,
        notice(
            &hub,
            "m-1",
            vec![
                suspect("ICBC", "6222020000001111", 1_000),
                suspect("ICBC", "6222020000001112", 1_000),
            ],
        ),
    )
    .await;
    let mut police = hub.police("PSB-SZ").await;
    let mut bad = notice(&hub, "m-2", vec![suspect("ICBC", "6222020000001113", 0)]);
    bad.case_reference = "x".into();
    assert!(police.submit_notice(bad).await.is_err());
    let mut bank = hub.bank("ICBC").await;
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await.instruction.unwrap();
    ack(
        &hub,
        "ICBC",
        &first.instruction_id,
        executed(1_000, now_ms(&hub)),
    )
    .await;
    police
        .list_subject(ListSubjectRequest {
            request_id: "m-l".into(),
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

    let m = eventually(Duration::from_secs(10), || async {
        let m = scrape(hub.metrics_addr).await;
        (m.get("stophub_blacklist_entries") == Some(&1.0)).then_some(m)
    })
    .await;
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in {m:#?}"));
    assert_eq!(
        get(
            r#"stophub_requests_total{method="/stophub.police.v1.PoliceService/SubmitNotice",code="OK"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"stophub_requests_total{method="/stophub.police.v1.PoliceService/SubmitNotice",code="INVALID_ARGUMENT"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"stophub_requests_total{method="/stophub.bank.v1.BankService/Acknowledge",code="OK"}"#
        ),
        1.0
    );
    let count = get(
        r#"stophub_request_duration_seconds_count{method="/stophub.police.v1.PoliceService/SubmitNotice"}"#,
    );
    assert_eq!(
        get(
            r#"stophub_request_duration_seconds_bucket{method="/stophub.police.v1.PoliceService/SubmitNotice",le="+Inf"}"#
        ),
        count
    );
    assert_eq!(
        get(r#"stophub_open_instructions{institution="ICBC"}"#),
        1.0,
        "two sent, one answered"
    );
    assert_eq!(get(r#"stophub_open_instructions{institution="CCB"}"#), 0.0);
    assert_eq!(get("stophub_bank_streams"), 1.0);
    assert_eq!(
        get(r#"stophub_instruction_transitions_total{action="StopPayment",state="Executed"}"#),
        1.0
    );
    assert!(get("stophub_store_sync_seconds_count") >= 1.0);
    assert!(m.contains_key("stophub_timer_lag_seconds_count"));
    drop(stream);
    // The overdue timer is counted with its lag.
    advance(&hub, 6 * MINUTE);
    eventually(Duration::from_secs(10), || async {
        let m = scrape(hub.metrics_addr).await;
        (m.get("stophub_timer_lag_seconds_count")
            .copied()
            .unwrap_or(0.0)
            >= 1.0
            && m.get("stophub_bank_streams") == Some(&0.0))
        .then_some(())
    })
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn request_logs_name_caller_and_outcome_and_mask_identity_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stophub"))
        .current_dir(dir.path())
        .args([
            "serve",
            "--dev",
            "--metrics-listen",
            "off",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let certs = dir.path().join("certs");
    let stophub = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stophub"))
            .current_dir(dir.path())
            .args(args)
            .args(["--hub", &format!("https://localhost:{port}")])
            .output()
            .unwrap()
    };
    eventually(Duration::from_secs(20), || async {
        certs.join("ca.pem").exists().then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), || async {
        stophub(&["healthcheck"]).status.success().then_some(())
    })
    .await;
    let listed = stophub(&[
        "police",
        "list-subject",
        "--doc-type",
        "resident-id",
        "--doc-number",
        "11010519491231002X",
        "--basis",
        "PBOC-2019-ACCOUNT-TRADING",
        "--case",
        "SZ-1",
        "--request-id",
        "log-1",
    ]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let submitted = stophub(&[
        "police",
        "submit",
        "--request-id",
        "log-2",
        "--case",
        "SZ-1",
        "--victim-institution",
        "CCB",
        "--victim-account",
        "6217000011112222",
        "--victim-name",
        "Li Si",
        "--amount-fen",
        "500",
        "--transaction-ref",
        "T1",
        "--transfer-time",
        "2026-01-01T00:00:00Z",
        "--suspect",
        "ICBC:6222029876543210:Wang Wu:500",
    ]);
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let refused = stophub(&[
        "police",
        "list-subject",
        "--org",
        "PSB-SZ-NS",
        "--doc-type",
        "passport",
        "--doc-number",
        "E1234567",
        "--basis",
        "X",
        "--case",
        "C",
    ]);
    assert_eq!(refused.status.code(), Some(3));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    assert!(!text.contains('\u{1b}'), "no colour codes in a log file");
    let request = |caller: &str, method: &str, code: &str| {
        text.lines().any(|l| {
            l.contains("request")
                && l.contains(&format!("caller={caller} "))
                && l.contains(method)
                && l.contains(&format!("code=\"{code}\""))
        })
    };
    assert!(
        request(
            "police:PSB-SZ",
            "/stophub.police.v1.PoliceService/ListSubject",
            "OK"
        ),
        "{text}"
    );
    assert!(
        request(
            "police:PSB-SZ",
            "/stophub.police.v1.PoliceService/SubmitNotice",
            "OK"
        ),
        "{text}"
    );
    assert!(
        request(
            "police:PSB-SZ-NS",
            "/stophub.police.v1.PoliceService/ListSubject",
            "PERMISSION_DENIED"
        ),
        "{text}"
    );
    assert!(
        !text.contains("11010519491231002X"),
        "an identity number in the clear:\n{text}"
    );
    assert!(
        !text.contains("6222029876543210"),
        "an account number in the clear:\n{text}"
    );
    assert!(
        text.contains("RID:**************002X"),
        "the masked form is logged:\n{text}"
    );
    // With the hub gone, the healthcheck fails.
    assert!(
        !stophub(&["healthcheck", "--timeout-secs", "2"])
            .status
            .success()
    );
}
