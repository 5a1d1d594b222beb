//! Identity and access: who may call what, decided by the client certificate alone.

mod common;

use common::*;
use stophub::certs::Ca;
use stophub::client::{self, ClientTls};
use stophub::proto::stophub::bank::v1::{AcknowledgeRequest, SubscribeRequest};
use stophub::proto::stophub::oversight::v1::ListInstructionsRequest;
use stophub::proto::stophub::police::v1::{GetNoticeRequest, WatchNoticeRequest};
use tonic::Code;

fn tls_from(hub: &TestHub, cert: String, key: String, ca_pem: Vec<u8>) -> ClientTls {
    let _ = hub;
    ClientTls {
        ca_pem,
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        server_name: "localhost".into(),
    }
}

fn hub_ca(hub: &TestHub) -> Ca {
    let dir = hub.certs_dir();
    Ca::from_pem(
        &std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(dir.join("ca-key.pem")).unwrap(),
    )
    .unwrap()
}

async fn instruction_count(hub: &TestHub) -> usize {
    let mut oversight = hub.oversight("PBOC").await;
    oversight
        .list_instructions(ListInstructionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .instructions
        .len()
}

#[tokio::test]
async fn a_bank_cannot_answer_another_banks_instruction() {
    let hub = TestHub::start().await;
    let n = submit(
        &hub,
        notice(
            &hub,
            "req-a",
            vec![suspect("ICBC", "6222020000001111", 1_000)],
        ),
    )
    .await;
    let id = n.instructions[0].instruction_id.clone();
    let mut ccb = hub.bank("CCB").await;
    let err = ccb
        .acknowledge(AcknowledgeRequest {
            instruction_id: id.clone(),
            outcome: Some(executed(1_000, now_ms(&hub))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The instruction is untouched and ICBC can still answer it.
    let mut icbc = hub.bank("ICBC").await;
    let ok = icbc
        .acknowledge(AcknowledgeRequest {
            instruction_id: id,
            outcome: Some(executed(1_000, now_ms(&hub))),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.duplicate);
    hub.stop().await;
}

#[tokio::test]
async fn a_police_agency_sees_only_its_own_notices() {
    let hub = TestHub::start().await;
    let n = submit(
        &hub,
        notice(
            &hub,
            "req-own",
            vec![suspect("ICBC", "6222020000001111", 1_000)],
        ),
    )
    .await;
    let mut county = hub.police("PSB-SZ-NS").await;
    let err = county
        .get_notice(GetNoticeRequest {
            notice_id: n.notice_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = county
        .watch_notice(WatchNoticeRequest {
            notice_id: n.notice_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = county
        .get_notice(GetNoticeRequest {
            notice_id: "N000000000999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    hub.stop().await;
}

#[tokio::test]
async fn the_wrong_role_for_a_service_is_refused() {
    let hub = TestHub::start().await;
    // A bank calling the police service.
    let mut as_bank = client::police(hub.channel("bank", "ICBC").await);
    let err = as_bank
        .submit_notice(notice(
            &hub,
            "req-role",
            vec![suspect("ICBC", "6222020000001111", 1_000)],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("police"), "{}", err.message());
    // Oversight calling the police service: it reads everything but writes nothing.
    let mut as_oversight = client::police(hub.channel("oversight", "PBOC").await);
    let err = as_oversight
        .submit_notice(notice(
            &hub,
            "req-role",
            vec![suspect("ICBC", "6222020000001111", 1_000)],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Police subscribing to a bank stream, and reading oversight.
    let mut as_police = client::bank(hub.channel("police", "PSB-SZ").await);
    let err = as_police
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut as_police = client::oversight(hub.channel("police", "PSB-SZ").await);
    let err = as_police
        .list_instructions(ListInstructionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(instruction_count(&hub).await, 0);
    hub.stop().await;
}

#[tokio::test]
async fn an_unregistered_organisation_is_refused() {
    let hub = TestHub::start().await;
    let ca = hub_ca(&hub);
    let ca_pem = std::fs::read(hub.certs_dir().join("ca.pem")).unwrap();
    for (uri, call) in [
        ("urn:stophub:police:PSB-NOWHERE", "police"),
        ("urn:stophub:bank:NOBANK", "bank"),
        ("urn:stophub:admin:ROOT", "police"),
    ] {
        let (cert, key) = ca.issue_client(uri, "x").unwrap();
        let channel = hub
            .channel_with(&tls_from(&hub, cert, key, ca_pem.clone()))
            .await;
        let code = if call == "police" {
            client::police(channel)
                .submit_notice(notice(
                    &hub,
                    "req-unreg",
                    vec![suspect("ICBC", "6222020000001111", 1_000)],
                ))
                .await
                .unwrap_err()
                .code()
        } else {
            client::bank(channel)
                .subscribe(SubscribeRequest { after_sequence: 0 })
                .await
                .unwrap_err()
                .code()
        };
        assert_eq!(code, Code::PermissionDenied, "{uri}");
    }
    assert_eq!(instruction_count(&hub).await, 0);
    hub.stop().await;
}

#[tokio::test]
async fn no_certificate_or_a_foreign_ca_cannot_even_connect() {
    let hub = TestHub::start().await;
    let ca_pem = std::fs::read(hub.certs_dir().join("ca.pem")).unwrap();
    // A certificate from another CA that names a registered agency.
    let foreign = Ca::new("not the hub's CA").unwrap();
    let (cert, key) = foreign
        .issue_client("urn:stophub:police:PSB-SZ", "PSB-SZ")
        .unwrap();
    let tls = tls_from(&hub, cert, key, ca_pem.clone());
    let refused = match client::connect(&hub.url(), &tls).await {
        Err(_) => true,
        Ok(channel) => client::police(channel)
            .submit_notice(notice(
                &hub,
                "req-foreign",
                vec![suspect("ICBC", "6222020000001111", 1_000)],
            ))
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");

    // No client certificate at all.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem))
        .domain_name("localhost");
    let endpoint = tonic::transport::Endpoint::from_shared(hub.url())
        .unwrap()
        .tls_config(config)
        .unwrap();
    let refused = match endpoint.connect().await {
        Err(_) => true,
        Ok(channel) => client::police(channel)
            .submit_notice(notice(
                &hub,
                "req-nocert",
                vec![suspect("ICBC", "6222020000001111", 1_000)],
            ))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a connection without a client certificate must be refused"
    );
    assert_eq!(instruction_count(&hub).await, 0);
    hub.stop().await;
}
