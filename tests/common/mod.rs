//! The end-to-end harness: a real hub on 127.0.0.1 port 0, real mutual TLS with certificates
//! minted for this run, a manual clock, and clients per role.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stophub::client::{self, ClientTls};
use stophub::clock::ManualClock;
use stophub::hub::HubConfig;
use stophub::participants::{self, ParticipantsFile};
use stophub::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::oversight_service_client::OversightServiceClient;
use stophub::proto::stophub::police::v1::SubmitNoticeRequest;
use stophub::proto::stophub::police::v1::police_service_client::PoliceServiceClient;
use stophub::server::{ServeOptions, TlsFiles};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub struct TestHub {
    pub dir: Arc<TempDir>,
    pub addr: std::net::SocketAddr,
    pub clock: ManualClock,
    config: HubConfig,
    pub metrics_addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), stophub::server::ServerError>>>,
}

impl TestHub {
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// A fresh hub with the demo participants and new certificates.
    pub async fn start() -> TestHub {
        Self::start_with(participants::demo(), HubConfig::default()).await
    }

    /// A fresh hub with these participants (each gets a certificate) and this configuration.
    pub async fn start_with(file: ParticipantsFile, config: HubConfig) -> TestHub {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        stophub::certs::mint_dev(&dir.path().join("certs"), &file, &[]).expect("mint certs");
        std::fs::write(dir.path().join("participants.toml"), file.to_toml()).expect("participants");
        Self::start_configured(dir, ManualClock::starting_now(), config).await
    }

    /// A hub over an existing directory (certificates, participants and data).
    pub async fn start_in(dir: Arc<TempDir>, clock: ManualClock) -> TestHub {
        Self::start_configured(dir, clock, HubConfig::default()).await
    }

    /// A hub over an existing directory, with this configuration.
    pub async fn start_configured(
        dir: Arc<TempDir>,
        clock: ManualClock,
        config: HubConfig,
    ) -> TestHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A free port for the metrics endpoint (released here, bound again by the hub).
        let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("metrics port");
        let certs = dir.path().join("certs");
        let options = ServeOptions {
            data_dir: dir.path().join("data"),
            tls: TlsFiles {
                ca: certs.join("ca.pem"),
                cert: certs.join("server.pem"),
                key: certs.join("server-key.pem"),
            },
            participants: dir.path().join("participants.toml"),
            hub: config.clone(),
            metrics_listen: Some(metrics_addr),
            grace: Duration::from_secs(5),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(stophub::server::run(
            listener,
            options,
            Arc::new(clock.clone()),
            async move {
                let _ = stopped.await;
            },
        ));
        TestHub {
            dir,
            addr,
            clock,
            config,
            metrics_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the hub and waits until it has drained and synced.
    pub async fn stop(mut self) -> (Arc<TempDir>, ManualClock) {
        self.shutdown().await;
        (self.dir.clone(), self.clock.clone())
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the hub stops within 30 s")
                .expect("the hub task does not panic");
            result.expect("the hub ran without error");
        }
    }

    /// Stops and starts again on the same data, on a new port.
    pub async fn restart(self) -> TestHub {
        let config = self.config.clone();
        let (dir, clock) = self.stop().await;
        TestHub::start_configured(dir, clock, config).await
    }

    pub fn tls_for(&self, role: &str, org: &str) -> ClientTls {
        ClientTls::dev(&self.certs_dir(), role, org).expect("client certs")
    }

    pub async fn channel(&self, role: &str, org: &str) -> Channel {
        self.channel_with(&self.tls_for(role, org)).await
    }

    pub async fn channel_with(&self, tls: &ClientTls) -> Channel {
        // The server task may not have reached accept yet; retry briefly.
        let mut last = None;
        for _ in 0..50 {
            match client::connect(&self.url(), tls).await {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot connect: {last:?}");
    }

    pub async fn police(&self, org: &str) -> PoliceServiceClient<Channel> {
        client::police(self.channel("police", org).await)
    }
    pub async fn bank(&self, org: &str) -> BankServiceClient<Channel> {
        client::bank(self.channel("bank", org).await)
    }
    pub async fn oversight(&self, org: &str) -> OversightServiceClient<Channel> {
        client::oversight(self.channel("oversight", org).await)
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Writes a participants file that adds `extra` to the demo set, for tests that need more.
pub fn write_participants(path: &Path, file: &ParticipantsFile) {
    std::fs::write(path, file.to_toml()).expect("participants");
}

/// Sends SIGTERM to a hub running as a child process and waits, for at most `limit`, until it
/// exits; returns how it exited.
pub async fn terminate(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(exit) = child.try_wait().expect("try_wait") {
            return exit;
        }
        assert!(
            started.elapsed() < limit,
            "the hub did not exit within {limit:?} of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it returns Some, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Receives the next message of a stream within 10 s.
pub async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within 10 s")
        .expect("stream error")
        .expect("stream ended early")
}

/// Asserts that nothing arrives on the stream for a short while.
pub async fn nothing_more<T: std::fmt::Debug>(stream: &mut tonic::Streaming<T>) {
    if let Ok(msg) = tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
        let msg = msg.expect("stream error");
        assert!(msg.is_none(), "unexpected message: {msg:?}");
    }
}

pub fn ts(ms: i64) -> prost_types::Timestamp {
    stophub::service::convert::timestamp_to_proto(stophub::domain::ids::Timestamp::from_millis(ms))
}

pub fn now_ms(hub: &TestHub) -> i64 {
    use stophub::clock::Clock;
    hub.clock.now().millis()
}

pub fn suspect(institution: &str, account: &str, amount_fen: i64) -> pb::SuspectAccount {
    let kind = if matches!(institution, "ALIPAY" | "TENPAY") {
        pb::AccountKind::PaymentAccount
    } else {
        pb::AccountKind::BankAccount
    };
    pb::SuspectAccount {
        institution_code: institution.into(),
        account_number: account.into(),
        account_name: "Wang Wu".into(),
        account_kind: kind as i32,
        amount_fen,
        ..Default::default()
    }
}

/// A valid stop-payment notice for the given suspects.
pub fn notice(
    hub: &TestHub,
    request_id: &str,
    suspects: Vec<pb::SuspectAccount>,
) -> SubmitNoticeRequest {
    notice_at(now_ms(hub), request_id, suspects)
}

/// A valid stop-payment notice for the given suspects, for a hub whose clock reads `now_ms`.
pub fn notice_at(
    now_ms: i64,
    request_id: &str,
    suspects: Vec<pb::SuspectAccount>,
) -> SubmitNoticeRequest {
    SubmitNoticeRequest {
        request_id: request_id.into(),
        case_reference: "SZ-2026-0001".into(),
        action: pb::Action::StopPayment as i32,
        victim_transfer: Some(pb::VictimTransfer {
            institution_code: "CCB".into(),
            account_number: "6217000011112222".into(),
            account_name: "Li Si".into(),
            currency: "CNY".into(),
            amount_fen: 5_000_000,
            transfer_time: Some(ts(now_ms - 3_600_000)),
            transaction_reference: "CCB-TX-778899".into(),
        }),
        suspect_accounts: suspects,
        ..Default::default()
    }
}

pub fn executed(
    amount_fen: i64,
    at_ms: i64,
) -> stophub::proto::stophub::bank::v1::acknowledge_request::Outcome {
    stophub::proto::stophub::bank::v1::acknowledge_request::Outcome::Executed(pb::Executed {
        amount_held_fen: amount_fen,
        balance_fen: 123,
        executed_at: Some(ts(at_ms)),
        ..Default::default()
    })
}

pub type AckOutcome = stophub::proto::stophub::bank::v1::acknowledge_request::Outcome;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

pub fn state_of(i: &pb::Instruction) -> pb::InstructionState {
    pb::InstructionState::try_from(i.state).expect("known state")
}

/// Reads an instruction through oversight.
pub async fn instruction(hub: &TestHub, id: &str) -> pb::Instruction {
    let mut oversight = hub.oversight("PBOC").await;
    oversight
        .get_instruction(
            stophub::proto::stophub::oversight::v1::GetInstructionRequest {
                instruction_id: id.into(),
            },
        )
        .await
        .expect("get instruction")
        .into_inner()
        .instruction
        .expect("instruction")
}

/// Waits (bounded) until the instruction is in `state`; returns it.
pub async fn wait_state(hub: &TestHub, id: &str, state: pb::InstructionState) -> pb::Instruction {
    eventually(Duration::from_secs(10), || async {
        let i = instruction(hub, id).await;
        (state_of(&i) == state).then_some(i)
    })
    .await
}

/// Moves the hub's clock forward.
pub fn advance(hub: &TestHub, ms: i64) {
    hub.clock.advance_millis(ms);
}

/// Submits a notice as PSB-SZ and returns it.
pub async fn submit(
    hub: &TestHub,
    req: SubmitNoticeRequest,
) -> stophub::proto::stophub::police::v1::Notice {
    hub.police("PSB-SZ")
        .await
        .submit_notice(req)
        .await
        .expect("submit")
        .into_inner()
        .notice
        .expect("notice")
}

/// Answers an instruction as `institution`.
pub async fn ack(
    hub: &TestHub,
    institution: &str,
    id: &str,
    outcome: AckOutcome,
) -> pb::Instruction {
    hub.bank(institution)
        .await
        .acknowledge(stophub::proto::stophub::bank::v1::AcknowledgeRequest {
            instruction_id: id.into(),
            outcome: Some(outcome),
        })
        .await
        .expect("acknowledge")
        .into_inner()
        .instruction
        .expect("instruction")
}

pub fn partial(held: i64, at_ms: i64, onward: Vec<pb::OnwardTransfer>) -> AckOutcome {
    AckOutcome::Partial(pb::Partial {
        amount_held_fen: held,
        balance_fen: 0,
        executed_at: Some(ts(at_ms)),
        onward_transfers: onward,
    })
}

pub fn onward(institution: &str, account: &str, amount_fen: i64, at_ms: i64) -> pb::OnwardTransfer {
    pb::OnwardTransfer {
        institution_code: institution.into(),
        account_number: account.into(),
        account_name: "Next Holder".into(),
        amount_fen,
        time: Some(ts(at_ms)),
        transaction_reference: format!("TX-{account}"),
    }
}

pub fn frozen(
    frozen_fen: i64,
    not_frozen_fen: i64,
    earlier: Vec<pb::EarlierFreeze>,
    at_ms: i64,
) -> AckOutcome {
    AckOutcome::Frozen(pb::Frozen {
        amount_frozen_fen: frozen_fen,
        balance_fen: frozen_fen,
        available_balance_fen: 0,
        amount_not_frozen_fen: not_frozen_fen,
        not_frozen_reason: if not_frozen_fen > 0 {
            "insufficient balance".into()
        } else {
            String::new()
        },
        earlier_freezes: earlier,
        executed_at: Some(ts(at_ms)),
        onward_transfers: vec![],
    })
}

pub fn done(at_ms: i64) -> AckOutcome {
    AckOutcome::Done(pb::Done {
        executed_at: Some(ts(at_ms)),
    })
}

/// A freeze notice with a filed case.
pub fn freeze_notice(
    hub: &TestHub,
    request_id: &str,
    suspects: Vec<pb::SuspectAccount>,
) -> SubmitNoticeRequest {
    let mut req = notice(hub, request_id, suspects);
    req.action = pb::Action::Freeze as i32;
    req.case_filing = Some(pb::CaseFiling {
        case_number: "SZ-LA-2026-77".into(),
        filed_at: Some(ts(now_ms(hub) - DAY)),
    });
    req.freeze = Some(pb::FreezeTerms {
        mode: pb::FreezeMode::AmountLimited as i32,
        major_case_approval: None,
    });
    req
}

pub fn ms_of(t: Option<&prost_types::Timestamp>) -> i64 {
    let t = t.expect("timestamp");
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

/// GET /metrics, parsed into `name{labels}` -> value.
pub async fn scrape(addr: std::net::SocketAddr) -> std::collections::HashMap<String, f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text))
        .await
        .expect("an answer")
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("name value");
            (
                k.to_owned(),
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("not a number: {l}")),
            )
        })
        .collect()
}

/// The ids of every instruction at `institution` in one of `states` (any state when empty),
/// through oversight, page by page.
pub async fn listed(
    hub: &TestHub,
    institution: &str,
    states: &[pb::InstructionState],
) -> Vec<String> {
    let mut oversight = hub.oversight("PBOC").await;
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = oversight
            .list_instructions(
                stophub::proto::stophub::oversight::v1::ListInstructionsRequest {
                    institution_code: institution.into(),
                    states: states.iter().map(|s| *s as i32).collect(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                },
            )
            .await
            .expect("list instructions")
            .into_inner();
        ids.extend(page.instructions.into_iter().map(|i| i.instruction_id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}
