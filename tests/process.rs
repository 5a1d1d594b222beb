//! The real binary as a child process: `serve --dev` on a fresh directory makes its own
//! certificates and participants, serves, and exits cleanly and promptly on SIGTERM even with
//! a bank stream open.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use stophub::client::{self, ClientTls};
use stophub::proto::stophub::bank::v1::SubscribeRequest;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serve_dev_starts_from_nothing_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stophub"))
        .current_dir(dir.path())
        .args([
            "serve",
            "--dev",
            "--metrics-listen",
            "127.0.0.1:0",
            "--grace-secs",
            "5",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // It made its own certificates and participants file.
    let certs = dir.path().join("certs");
    let tls = common::eventually(Duration::from_secs(20), || {
        let certs = certs.clone();
        async move {
            ClientTls::from_files(
                &certs.join("ca.pem"),
                &certs.join("bank-ICBC.pem"),
                &certs.join("bank-ICBC-key.pem"),
                "localhost",
            )
            .ok()
        }
    })
    .await;
    assert!(dir.path().join("participants.toml").exists());
    let url = format!("https://localhost:{port}");
    let channel = common::eventually(Duration::from_secs(20), || {
        let (url, tls) = (url.clone(), tls.clone());
        async move { client::connect(&url, &tls).await.ok() }
    })
    .await;
    let mut bank = client::bank(channel);
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap()
        .into_inner();

    let exit = common::terminate(&mut child, Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");
    // The open stream was ended by the hub, not left hanging.
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends");
    assert!(!matches!(end, Ok(Some(_))));
}
