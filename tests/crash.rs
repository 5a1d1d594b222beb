//! Crash safety of the real binary: `stophub serve` as a child process under steady load from
//! police and banks, killed with SIGKILL at random moments and restarted on the same data.
//! At the end, every notice answered OK is there, was delivered to its bank and answered
//! exactly once; nothing else was created; no sequence number was reused; the audit chain
//! verifies, online and offline.
//!
//! The kill schedule comes from a seeded generator whose seed is printed;
//! `STOPHUB_CRASH_SEED=<seed>` repeats the schedule (the load itself races, by design).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stophub::client::{self, ClientTls};
use stophub::clock::{Clock, SystemClock};
use stophub::proto::stophub::bank::v1::{AcknowledgeRequest, DeliveryKind, SubscribeRequest};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::{ListInstructionsRequest, VerifyAuditRequest};
use stophub::proto::stophub::police::v1::{GetNoticeRequest, SubmitNoticeRequest};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

/// At least ten kills, as the issue asks; each run lives 0.2-1.5 s.
const KILLS: usize = 20;
const INSTITUTIONS: [&str; 5] = ["ICBC", "CCB", "CMB", "ALIPAY", "TENPAY"];
/// Police lanes: the agency and a lane number that keeps request ids and accounts apart.
const POLICE: [(&str, u64); 3] = [("PSB-SZ", 1), ("PSB-SZ", 2), ("PSB-SZ-NS", 3)];
/// One call's bound; a call that takes longer is treated like a broken connection and retried.
const CALL: Duration = Duration::from_secs(20);

/// SplitMix64: a small seeded generator, so a failing schedule can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The hub as a child process; each start gets a new port, published to the clients.
struct HubProcess {
    dir: PathBuf,
    child: Option<Child>,
    url: watch::Sender<String>,
}

impl HubProcess {
    fn start(&mut self) {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("hub.log"))
            .expect("hub log");
        let path = |p: &str| self.dir.join(p).display().to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_stophub"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &path("data"), "--certs-dir", &path("certs")])
            .args(["--participants", &path("participants.toml")])
            .args(["--metrics-listen", "off", "--grace-secs", "5"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the hub");
        self.child = Some(child);
        self.url.send_replace(format!("https://127.0.0.1:{port}"));
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running hub");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap the hub");
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    async fn terminate(&mut self) {
        let mut child = self.child.take().expect("a running hub");
        let exit = common::terminate(&mut child, Duration::from_secs(30)).await;
        assert!(exit.success(), "the hub's exit on SIGTERM: {exit:?}");
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tls(dir: &Path, role: &str, org: &str) -> ClientTls {
    ClientTls::dev(&dir.join("certs"), role, org).expect("client certs")
}

/// Connects to whichever hub is current, retrying while it is down (bounded).
async fn connect(url: &watch::Receiver<String>, tls: &ClientTls) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = url.borrow().clone();
        if let Ok(Ok(channel)) =
            tokio::time::timeout(Duration::from_secs(5), client::connect(&current, tls)).await
        {
            return channel;
        }
        assert!(
            Instant::now() < deadline,
            "no hub to connect to for 60 s (last tried {current})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a real client sees when the hub dies under it: retry (the same request) elsewhere.
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// A notice answered OK, as the police client recorded it.
struct Answered {
    agency: &'static str,
    request_id: String,
    notice_id: String,
    /// (instruction id, institution, account, amount) in the order answered.
    instructions: Vec<(String, String, String, i64)>,
    replayed: bool,
    attempts: u32,
}

fn crash_notice(lane: u64, n: u64, rng: &mut Rng, started_ms: i64) -> SubmitNoticeRequest {
    let suspects = (0..1 + rng.below(3))
        .map(|k| {
            let institution = INSTITUTIONS[rng.below(INSTITUTIONS.len() as u64) as usize];
            // Unique per (lane, notice, position): no account is ever named twice.
            let account = format!("62220{lane}{n:08}{k}");
            common::suspect(institution, &account, 1_000 + rng.below(1_000_000) as i64)
        })
        .collect();
    SubmitNoticeRequest {
        case_reference: format!("CRASH-{lane}-{n}"),
        ..common::notice_at(started_ms, &format!("crash-{lane}-{n}"), suspects)
    }
}

/// Submits notices until stopped; a failed call is retried with the same request after
/// reconnecting. The notice in flight when the stop comes is finished first.
async fn police_load(
    agency: &'static str,
    lane: u64,
    tls: ClientTls,
    url: watch::Receiver<String>,
    stop: CancellationToken,
    progress: Arc<AtomicUsize>,
) -> Vec<Answered> {
    let mut rng = Rng(lane);
    // Fixed for the whole run, so that a retried request is the identical request.
    let started_ms = SystemClock.now().millis();
    let mut police = None;
    let mut answered = Vec::new();
    for n in 0.. {
        if stop.is_cancelled() {
            break;
        }
        let req = crash_notice(lane, n, &mut rng, started_ms);
        let mut attempts = 0;
        let answer = loop {
            attempts += 1;
            let client = match &mut police {
                Some(c) => c,
                None => police.insert(client::police(connect(&url, &tls).await)),
            };
            match tokio::time::timeout(CALL, client.submit_notice(req.clone())).await {
                Ok(Ok(answer)) => break answer.into_inner(),
                Ok(Err(status)) if transient(&status) => police = None,
                Ok(Err(status)) => panic!("{agency} {}: refused: {status:?}", req.request_id),
                Err(_) => police = None,
            }
        };
        let notice = answer.notice.expect("notice");
        assert_eq!(notice.request_id, req.request_id);
        progress.fetch_add(1, Ordering::SeqCst);
        answered.push(Answered {
            agency,
            request_id: req.request_id.clone(),
            notice_id: notice.notice_id,
            instructions: notice
                .instructions
                .iter()
                .map(|i| {
                    let a = i.account.as_ref().expect("account");
                    (
                        i.instruction_id.clone(),
                        a.institution_code.clone(),
                        a.account_number.clone(),
                        a.amount_fen,
                    )
                })
                .collect(),
            replayed: answer.replayed,
            attempts,
        });
    }
    answered
}

/// One message a bank received.
struct Delivery {
    sequence: u64,
    instruction_id: String,
    addressee: String,
    redelivery: bool,
    kind: i32,
}

#[derive(Default)]
struct BankLog {
    deliveries: Vec<Delivery>,
    subscriptions: usize,
    duplicate_acks: usize,
}

/// A bank that subscribes from its last processed sequence, acknowledges every instruction
/// (the same answer again for one it answered before), and reconnects whenever the hub goes.
async fn bank_load(
    code: &'static str,
    tls: ClientTls,
    url: watch::Receiver<String>,
    stop: CancellationToken,
) -> BankLog {
    let mut log = BankLog::default();
    let mut last = 0u64;
    // By instruction id: the answer given, so a redelivery gets the identical answer.
    let mut answers: HashMap<String, i64> = HashMap::new();
    'connect: while !stop.is_cancelled() {
        let mut bank = client::bank(connect(&url, &tls).await);
        let mut stream = match tokio::time::timeout(
            CALL,
            bank.subscribe(SubscribeRequest {
                after_sequence: last,
            }),
        )
        .await
        {
            Ok(Ok(stream)) => stream.into_inner(),
            Ok(Err(status)) if transient(&status) => continue,
            Ok(Err(status)) => panic!("{code}: subscribe after {last} refused: {status:?}"),
            Err(_) => continue,
        };
        log.subscriptions += 1;
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                _ = stop.cancelled() => break 'connect,
            };
            let m = match message {
                Ok(Some(m)) => m,
                Ok(None) => continue 'connect,
                Err(status) if transient(&status) => continue 'connect,
                Err(status) => panic!("{code}: stream error {status:?}"),
            };
            let inst = m.instruction.expect("instruction");
            let account = inst.account.expect("account");
            log.deliveries.push(Delivery {
                sequence: m.sequence,
                instruction_id: inst.instruction_id.clone(),
                addressee: account.institution_code.clone(),
                redelivery: m.redelivery,
                kind: m.kind,
            });
            if m.kind == DeliveryKind::Instruction as i32 {
                let at = *answers
                    .entry(inst.instruction_id.clone())
                    .or_insert_with(|| SystemClock.now().millis());
                let req = AcknowledgeRequest {
                    instruction_id: inst.instruction_id.clone(),
                    outcome: Some(common::executed(account.amount_fen, at)),
                };
                match tokio::time::timeout(CALL, bank.acknowledge(req)).await {
                    Ok(Ok(answer)) => {
                        log.duplicate_acks += usize::from(answer.into_inner().duplicate)
                    }
                    Ok(Err(status)) if transient(&status) => continue 'connect,
                    Ok(Err(status)) => {
                        panic!(
                            "{code}: acknowledge {} refused: {status:?}",
                            inst.instruction_id
                        )
                    }
                    Err(_) => continue 'connect,
                }
            }
            last = last.max(m.sequence);
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_survives_sigkill_under_load_and_loses_nothing_answered() {
    let started = Instant::now();
    let seed = std::env::var("STOPHUB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemClock.now().millis() as u64);
    println!("crash test: seed {seed} (STOPHUB_CRASH_SEED={seed} repeats the kill schedule)");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let participants = stophub::participants::demo();
    stophub::certs::mint_dev(&dir.join("certs"), &participants, &[]).expect("mint certs");
    std::fs::write(dir.join("participants.toml"), participants.to_toml()).expect("participants");
    let (url_tx, url) = watch::channel(String::new());
    let mut hub = HubProcess {
        dir: dir.clone(),
        child: None,
        url: url_tx,
    };
    hub.start();

    let progress = Arc::new(AtomicUsize::new(0));
    let stop_police = CancellationToken::new();
    let stop_banks = CancellationToken::new();
    let banks: Vec<_> = INSTITUTIONS
        .iter()
        .map(|&code| {
            tokio::spawn(bank_load(
                code,
                tls(&dir, "bank", code),
                url.clone(),
                stop_banks.clone(),
            ))
        })
        .collect();
    let police: Vec<_> = POLICE
        .iter()
        .map(|&(agency, lane)| {
            tokio::spawn(police_load(
                agency,
                lane,
                tls(&dir, "police", agency),
                url.clone(),
                stop_police.clone(),
                progress.clone(),
            ))
        })
        .collect();

    // Kill at random moments, 0.2-1.5 s after each start: some during start-up and recovery,
    // most under load.
    let mut runs_with_progress = 0;
    for _ in 0..KILLS {
        let before = progress.load(Ordering::SeqCst);
        let life = 200 + rng.below(1_300);
        tokio::time::sleep(Duration::from_millis(life)).await;
        hub.kill();
        runs_with_progress += usize::from(progress.load(Ordering::SeqCst) > before);
        hub.start();
    }
    // The last hub stays up: the load goes on against it (bounded wait for real progress), then
    // the police stop (each finishes the notice in flight) and the banks drain.
    let before = progress.load(Ordering::SeqCst);
    common::eventually(Duration::from_secs(60), || {
        let progress = progress.clone();
        async move { (progress.load(Ordering::SeqCst) >= before + 20).then_some(()) }
    })
    .await;
    stop_police.cancel();
    let mut answered = Vec::new();
    for task in police {
        answered.extend(task.await.expect("police task"));
    }
    let oversight_tls = tls(&dir, "oversight", "PBOC");
    let mut oversight = client::oversight(connect(&url, &oversight_tls).await);
    let mut readers = HashMap::new();
    for (agency, _) in POLICE {
        let channel = connect(&url, &tls(&dir, "police", agency)).await;
        readers.insert(agency, client::police(channel));
    }

    // Every notice answered OK exists, with the instructions it was answered with, and each
    // of them reaches an answer (the banks acknowledge as they receive).
    let mut notices = Vec::new();
    for a in &answered {
        let reader = readers[a.agency].clone();
        let notice = common::eventually(Duration::from_secs(60), || {
            let mut reader = reader.clone();
            let id = a.notice_id.clone();
            async move {
                let n = reader
                    .get_notice(GetNoticeRequest { notice_id: id })
                    .await
                    .expect("a notice answered OK exists")
                    .into_inner()
                    .notice
                    .expect("notice");
                n.instructions
                    .iter()
                    .all(|i| !awaiting_answer(i))
                    .then_some(n)
            }
        })
        .await;
        notices.push(notice);
    }
    stop_banks.cancel();
    let mut logs = BTreeMap::new();
    for (task, code) in banks.into_iter().zip(INSTITUTIONS) {
        logs.insert(code, task.await.expect("bank task"));
    }

    // The notices as answered and as stored agree; each instruction was answered exactly once.
    let mut by_id: HashMap<String, (String, String)> = HashMap::new();
    for (a, n) in answered.iter().zip(&notices) {
        assert_eq!(n.request_id, a.request_id);
        assert_eq!(n.police_agency, a.agency);
        let stored: Vec<_> = n.instructions.iter().map(|i| &i.instruction_id).collect();
        let told: Vec<_> = a.instructions.iter().map(|i| &i.0).collect();
        assert_eq!(
            stored, told,
            "{}: the instructions answered are the ones stored",
            a.request_id
        );
        for (i, (id, institution, _, amount)) in n.instructions.iter().zip(&a.instructions) {
            assert_eq!(
                common::state_of(i),
                pb::InstructionState::Executed,
                "{id}: answered once, with the bank's answer"
            );
            let Some(pb::acknowledgement::Outcome::Executed(e)) = i
                .acknowledgement
                .as_ref()
                .and_then(|ack| ack.outcome.as_ref())
            else {
                panic!("{id}: no executed acknowledgement: {i:?}");
            };
            assert_eq!(e.amount_held_fen, *amount);
            let previous = by_id.insert(id.clone(), (institution.clone(), n.notice_id.clone()));
            assert!(previous.is_none(), "{id} belongs to two notices");
        }
    }

    // Nothing else exists: no second notice for a retried request, no account stopped twice.
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = oversight
            .list_instructions(ListInstructionsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list instructions")
            .into_inner();
        all.extend(page.instructions);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        all.len(),
        by_id.len(),
        "exactly the instructions answered OK exist"
    );
    let mut accounts = HashSet::new();
    for i in &all {
        let known = by_id.get(&i.instruction_id).unwrap_or_else(|| {
            panic!(
                "{} exists but no notice answered OK has it",
                i.instruction_id
            )
        });
        assert_eq!(known.1, i.notice_id);
        let a = i.account.as_ref().expect("account");
        assert!(
            accounts.insert((a.institution_code.clone(), a.account_number.clone())),
            "a second instruction for {} {}",
            a.institution_code,
            a.account_number
        );
    }

    // Every instruction went to its own bank under one sequence number, and every delivery
    // is of an instruction the hub knows; no sequence number was given twice.
    let mut deliveries = 0;
    let mut flagged = 0;
    let mut repeated = 0;
    for (code, log) in &logs {
        let mut seq_of: HashMap<&str, u64> = HashMap::new();
        let mut id_of: HashMap<u64, &str> = HashMap::new();
        for d in &log.deliveries {
            assert_eq!(d.addressee, *code, "{} went to {code}", d.instruction_id);
            let known = by_id.get(&d.instruction_id).unwrap_or_else(|| {
                panic!("{code} received {} which no notice has", d.instruction_id)
            });
            assert_eq!(known.0, *code);
            if d.kind != DeliveryKind::Instruction as i32 {
                continue;
            }
            deliveries += 1;
            flagged += usize::from(d.redelivery);
            if let Some(seq) = seq_of.insert(&d.instruction_id, d.sequence) {
                repeated += 1;
                assert_eq!(
                    seq, d.sequence,
                    "{} came under two sequences",
                    d.instruction_id
                );
            }
            if let Some(id) = id_of.insert(d.sequence, &d.instruction_id) {
                assert_eq!(
                    id, d.instruction_id,
                    "{code} sequence {} was given twice",
                    d.sequence
                );
            }
        }
        for (id, (institution, _)) in &by_id {
            if institution == code {
                assert!(
                    seq_of.contains_key(id.as_str()),
                    "{id} was never delivered to {code}"
                );
            }
        }
    }

    // The audit chain verifies online, then offline on the stopped hub's data, and records
    // each notice exactly once however many times its request was sent.
    let verdict = oversight
        .verify_audit(VerifyAuditRequest {})
        .await
        .expect("verify audit")
        .into_inner();
    assert!(verdict.intact, "audit chain broken: {verdict:?}");
    drop((oversight, readers));
    hub.terminate().await;
    let verify = Command::new(env!("CARGO_BIN_EXE_stophub"))
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .expect("run audit verify");
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && said.contains("intact"),
        "audit verify: {said}"
    );
    let export = Command::new(env!("CARGO_BIN_EXE_stophub"))
        .args(["audit", "export", "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .expect("run audit export");
    assert!(export.status.success());
    let mut audited: HashMap<String, usize> = HashMap::new();
    for line in String::from_utf8_lossy(&export.stdout).lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        for item in record["items"].as_array().expect("items") {
            if item["kind"] == "notice" {
                *audited
                    .entry(item["id"].as_str().expect("id").to_owned())
                    .or_default() += 1;
            }
        }
    }
    for a in &answered {
        assert_eq!(
            audited.get(&a.notice_id),
            Some(&1),
            "{} audited once",
            a.notice_id
        );
    }
    assert_eq!(
        audited.len(),
        answered.len(),
        "no notice audited that was not answered"
    );

    // No run of the hub panicked (a SIGKILL leaves no trace; a panic would).
    let log = std::fs::read_to_string(dir.join("hub.log")).expect("hub log");
    assert!(!log.contains("panicked"), "the hub panicked:\n{log}");

    let retried = answered.iter().filter(|a| a.attempts > 1).count();
    let replayed = answered.iter().filter(|a| a.replayed).count();
    println!(
        "crash test: {KILLS} kills ({runs_with_progress} runs answered notices), {} notices \
         ({} instructions), {retried} submitted more than once ({replayed} answered as a replay), \
         {deliveries} deliveries ({repeated} received twice, {flagged} flagged as redelivery: sent \
         before a kill), {} subscriptions, {} duplicate acknowledgements, {:.1} s",
        answered.len(),
        by_id.len(),
        logs.values().map(|l| l.subscriptions).sum::<usize>(),
        logs.values().map(|l| l.duplicate_acks).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
}

fn awaiting_answer(i: &pb::Instruction) -> bool {
    matches!(
        common::state_of(i),
        pb::InstructionState::Pending
            | pb::InstructionState::Delivered
            | pb::InstructionState::Overdue
    )
}
