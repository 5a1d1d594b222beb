//! Bank and client faults against a real hub: streams cut mid-delivery, a bank that never
//! acknowledges, cursors from the past and from the future, a hundred banks reconnecting at
//! once, a client that opens streams and never reads them, and a police client that sends
//! every request three times. Nothing is lost, nothing has a second effect, and everyone else
//! is served throughout.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use prost::Message;
use stophub::hub::HubConfig;
use stophub::participants::{self, Institution, InstitutionKind};
use stophub::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use stophub::proto::stophub::bank::v1::{
    AcknowledgeRequest, DeliveryKind, SubscribeRequest, SubscribeResponse, SyncBlacklistRequest,
    SyncKind,
};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::police::v1::{
    GetNoticeRequest, ListSubjectRequest, Notice, ReleaseRequest, RenewFreezeRequest,
    WatchNoticeRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Streaming};

/// A generous bound for one call while the hub is under load; never a claim about speed.
const PROMPTLY: Duration = Duration::from_secs(30);

async fn subscribe(
    bank: &mut BankServiceClient<Channel>,
    after_sequence: u64,
) -> Streaming<SubscribeResponse> {
    bank.subscribe(SubscribeRequest { after_sequence })
        .await
        .expect("subscribe")
        .into_inner()
}

/// A fresh account number (a third stop on one account in one case would be refused).
fn account() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("621480{:06}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One stop-payment notice per account at `institution`; returns the instruction ids in order.
async fn stops(hub: &TestHub, prefix: &str, institution: &str, n: usize) -> Vec<String> {
    let mut police = hub.police("PSB-SZ").await;
    let mut ids = Vec::new();
    for k in 0..n {
        let req = notice(
            hub,
            &format!("{prefix}-{k}"),
            vec![suspect(institution, &account(), 1_000)],
        );
        let answer = police
            .submit_notice(req)
            .await
            .expect("submit")
            .into_inner();
        ids.push(
            answer.notice.expect("notice").instructions[0]
                .instruction_id
                .clone(),
        );
    }
    ids
}

/// The hub's count of open bank delivery streams, from its metrics endpoint.
async fn open_bank_streams(hub: &TestHub) -> f64 {
    scrape(hub.metrics_addr).await["stophub_bank_streams"]
}

/// The next `n` deliveries, as (sequence, instruction id, redelivery).
async fn take(stream: &mut Streaming<SubscribeResponse>, n: usize) -> Vec<(u64, String, bool)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = next(stream).await;
        let id = m.instruction.expect("instruction").instruction_id;
        got.push((m.sequence, id, m.redelivery));
    }
    got
}

async fn acknowledge(bank: &mut BankServiceClient<Channel>, id: &str, hub: &TestHub) -> bool {
    bank.acknowledge(AcknowledgeRequest {
        instruction_id: id.into(),
        outcome: Some(executed(1_000, now_ms(hub))),
    })
    .await
    .expect("acknowledge")
    .into_inner()
    .duplicate
}

#[tokio::test]
async fn a_stream_cut_mid_delivery_resumes_with_exactly_the_unacknowledged_rest() {
    let hub = TestHub::start().await;
    let ids = stops(&hub, "cut", "CMB", 10).await;
    let mut bank = hub.bank("CMB").await;
    let mut stream = subscribe(&mut bank, 0).await;
    let first = take(&mut stream, 4).await;
    let expected: Vec<_> = (1..=4)
        .zip(ids.iter().cloned())
        .map(|(s, id)| (s, id, false))
        .collect();
    assert_eq!(first, expected);
    // The hub handed all ten to the stream, unread or not: they count as delivered.
    eventually(Duration::from_secs(10), || async {
        (listed(&hub, "CMB", &[pb::InstructionState::Delivered])
            .await
            .len()
            == 10)
            .then_some(())
    })
    .await;

    // The bank processes three, then the stream is cut with the fourth read but not
    // processed and six in flight. The hub notices and closes its side.
    for id in &ids[..3] {
        assert!(!acknowledge(&mut bank, id, &hub).await);
    }
    drop(stream);
    eventually(Duration::from_secs(10), || async {
        (open_bank_streams(&hub).await == 0.0).then_some(())
    })
    .await;
    // New work arrives while the bank is away.
    let later = stops(&hub, "cut-later", "CMB", 2).await;

    // Resuming from the last processed sequence: the seven sent before, marked as
    // redeliveries, then the two new ones, in sequence order; nothing acknowledged comes again.
    let mut stream = subscribe(&mut bank, 3).await;
    let got = take(&mut stream, 9).await;
    nothing_more(&mut stream).await;
    let expected: Vec<_> = (4..=12)
        .zip(ids[3..].iter().chain(&later).cloned())
        .map(|(seq, id)| (seq, id, seq <= 10))
        .collect();
    assert_eq!(got, expected);

    // A second cut, of the whole connection this time, after two more are processed.
    for id in &ids[3..5] {
        acknowledge(&mut bank, id, &hub).await;
    }
    drop((stream, bank));
    let mut bank = hub.bank("CMB").await;
    let mut stream = subscribe(&mut bank, 5).await;
    let rest = take(&mut stream, 7).await;
    nothing_more(&mut stream).await;
    let expected: Vec<_> = (6..=12)
        .zip(ids[5..].iter().chain(&later).cloned())
        .map(|(seq, id)| (seq, id, true))
        .collect();
    assert_eq!(rest, expected);
    for (_, id, _) in &rest {
        assert!(!acknowledge(&mut bank, id, &hub).await);
    }

    // Nothing was lost and nothing was answered twice: all twelve executed, none pending.
    let executed = listed(&hub, "CMB", &[pb::InstructionState::Executed]).await;
    assert_eq!(executed.len(), 12);
    let mut stream = subscribe(&mut bank, 12).await;
    nothing_more(&mut stream).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_bank_that_never_acknowledges_goes_overdue_while_another_flows() {
    let hub = TestHub::start().await;
    let mut silent = hub.bank("CCB").await;
    let mut busy = hub.bank("ICBC").await;
    let mut silent_stream = subscribe(&mut silent, 0).await;
    let mut busy_stream = subscribe(&mut busy, 0).await;
    let quiet = stops(&hub, "quiet", "CCB", 3).await;
    let flowing = stops(&hub, "flowing", "ICBC", 3).await;
    for id in &quiet {
        assert_eq!(
            &next(&mut silent_stream)
                .await
                .instruction
                .unwrap()
                .instruction_id,
            id
        );
    }
    for id in &flowing {
        let m = next(&mut busy_stream).await;
        assert_eq!(&m.instruction.unwrap().instruction_id, id);
        acknowledge(&mut busy, id, &hub).await;
    }

    // The answer deadline passes: CCB's three go OVERDUE and its stream gets an urgent
    // reminder for each; ICBC's answered ones are untouched.
    advance(&hub, 5 * MINUTE + 1_000);
    for id in &quiet {
        let i = wait_state(&hub, id, pb::InstructionState::Overdue).await;
        assert!(i.overdue_at.is_some());
    }
    let mut reminded = BTreeSet::new();
    for _ in &quiet {
        let m = next(&mut silent_stream).await;
        assert_eq!(m.kind, DeliveryKind::OverdueReminder as i32);
        assert!(m.urgent);
        reminded.insert(m.instruction.unwrap().instruction_id);
    }
    assert_eq!(reminded, quiet.iter().cloned().collect());
    for id in &flowing {
        let i = instruction(&hub, id).await;
        assert_eq!(state_of(&i), pb::InstructionState::Executed);
        assert!(i.overdue_at.is_none());
    }
    // ICBC's new work still flows, on time, while CCB's sits overdue.
    let more = stops(&hub, "flowing-more", "ICBC", 2).await;
    for id in &more {
        let m = next(&mut busy_stream).await;
        assert_eq!(&m.instruction.unwrap().instruction_id, id);
        assert!(!m.urgent);
        acknowledge(&mut busy, id, &hub).await;
        wait_state(&hub, id, pb::InstructionState::Executed).await;
    }
    nothing_more(&mut busy_stream).await;
    let overdue = listed(&hub, "", &[pb::InstructionState::Overdue]).await;
    assert_eq!(
        overdue.into_iter().collect::<BTreeSet<_>>(),
        quiet.iter().cloned().collect()
    );
    // Escalated, never dropped: CCB reconnecting gets all three again, urgent.
    drop(silent_stream);
    let mut again = subscribe(&mut silent, 6).await;
    for id in &quiet {
        let m = next(&mut again).await;
        assert_eq!(&m.instruction.unwrap().instruction_id, id);
        assert!(m.urgent && m.redelivery);
    }
    nothing_more(&mut again).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_old_cursor_replays_and_a_cursor_from_the_future_is_refused() {
    let hub = TestHub::start().await;
    let ids = stops(&hub, "cursor", "CMB", 3).await;
    let mut bank = hub.bank("CMB").await;
    let mut stream = subscribe(&mut bank, 0).await;
    for _ in &ids {
        next(&mut stream).await;
    }
    acknowledge(&mut bank, &ids[0], &hub).await;
    // Two go overdue: reminders 4 and 5 follow on the stream.
    advance(&hub, 5 * MINUTE + 1_000);
    let reminders: BTreeSet<_> = [next(&mut stream).await, next(&mut stream).await]
        .into_iter()
        .map(|m| {
            assert_eq!(m.kind, DeliveryKind::OverdueReminder as i32);
            m.sequence
        })
        .collect();
    assert_eq!(reminders, BTreeSet::from([4, 5]));
    drop(stream);

    let reader = bank.clone();
    let replay = |after| {
        let mut bank = reader.clone();
        async move {
            let mut stream = subscribe(&mut bank, after).await;
            let mut got = Vec::new();
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_millis(300), stream.message())
                    .await
                    .map(Result::transpose)
            {
                got.push((m.sequence, m.kind));
            }
            got
        }
    };
    let instruction = DeliveryKind::Instruction as i32;
    let reminder = DeliveryKind::OverdueReminder as i32;
    // From an old cursor: the unacknowledged instructions, then the reminders after it again.
    assert_eq!(
        replay(2).await,
        vec![
            (2, instruction),
            (3, instruction),
            (4, reminder),
            (5, reminder)
        ]
    );
    // From the last sequence: only what is still unacknowledged.
    assert_eq!(replay(5).await, vec![(2, instruction), (3, instruction)]);
    // From beyond anything issued: refused, naming the field and where the hub stands.
    let err = bank
        .subscribe(SubscribeRequest { after_sequence: 6 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(
        err.message().contains("after_sequence") && err.message().contains("(5)"),
        "{}",
        err.message()
    );
    // The refusal changed nothing: the bank resumes correctly and answers.
    assert_eq!(replay(5).await.len(), 2);
    for id in &ids[1..] {
        assert!(!acknowledge(&mut bank, id, &hub).await);
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_hundred_banks_reconnecting_at_once_each_get_exactly_their_own() {
    const BANKS: usize = 100;
    let codes: Vec<String> = (0..BANKS).map(|b| format!("BANK-{b:03}")).collect();
    let mut file = participants::demo();
    file.institutions
        .extend(codes.iter().map(|code| Institution {
            code: code.clone(),
            name: format!("Test bank {code}"),
            kind: InstitutionKind::Bank,
        }));
    let hub = TestHub::start_with(file, HubConfig::default()).await;
    let round = |n: usize| {
        notice(
            &hub,
            &format!("hundred-{n}"),
            (0..BANKS)
                .map(|b| suspect(&codes[b], &format!("6222{b:03}{n}000001"), 1_000))
                .collect(),
        )
    };
    let police = hub.police("PSB-SZ").await;
    // Per bank, its instruction ids in sequence order.
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let submit_round = |n| {
        let req = round(n);
        let mut police = police.clone();
        async move {
            police
                .submit_notice(req)
                .await
                .expect("submit")
                .into_inner()
        }
    };
    for n in 0..2 {
        let answer = submit_round(n).await;
        for i in answer.notice.unwrap().instructions {
            let code = i.account.unwrap().institution_code;
            expected.entry(code).or_default().push(i.instruction_id);
        }
    }

    // First contact: every bank reads its two, processes the first, and goes away.
    let mut tasks = Vec::new();
    for code in &codes {
        let channel = hub.channel("bank", code).await;
        let ids = expected[code].clone();
        let now = now_ms(&hub);
        tasks.push(tokio::spawn(async move {
            let mut bank = stophub::client::bank(channel);
            let mut stream = subscribe(&mut bank, 0).await;
            let got = [next(&mut stream).await, next(&mut stream).await];
            let got: Vec<_> = got.map(|m| m.instruction.unwrap().instruction_id).into();
            assert_eq!(got, ids);
            bank.acknowledge(AcknowledgeRequest {
                instruction_id: ids[0].clone(),
                outcome: Some(executed(1_000, now)),
            })
            .await
            .expect("acknowledge");
        }));
    }
    for t in tasks {
        t.await.expect("first contact");
    }
    eventually(Duration::from_secs(20), || async {
        (open_bank_streams(&hub).await == 0.0).then_some(())
    })
    .await;
    // More work while all of them are away.
    let answer = submit_round(2).await;
    for i in answer.notice.unwrap().instructions {
        let code = i.account.unwrap().institution_code;
        expected.entry(code).or_default().push(i.instruction_id);
    }

    // All hundred reconnect at the same moment, each from its last processed sequence.
    let mut channels = Vec::new();
    for code in &codes {
        channels.push(hub.channel("bank", code).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(BANKS));
    let mut tasks = Vec::new();
    for (code, channel) in codes.iter().zip(channels) {
        let (code, ids, barrier) = (code.clone(), expected[code].clone(), barrier.clone());
        let now = now_ms(&hub);
        tasks.push(tokio::spawn(async move {
            let mut bank = stophub::client::bank(channel);
            barrier.wait().await;
            let mut stream = subscribe(&mut bank, 1).await;
            // Its own unprocessed one again, then the new one; nobody else's.
            let a = next(&mut stream).await;
            let b = next(&mut stream).await;
            nothing_more(&mut stream).await;
            for (m, id, seq, redelivery) in [(&a, &ids[1], 2, true), (&b, &ids[2], 3, false)] {
                let i = m.instruction.as_ref().unwrap();
                assert_eq!(
                    (&i.instruction_id, m.sequence, m.redelivery),
                    (id, seq, redelivery)
                );
                assert_eq!(i.account.as_ref().unwrap().institution_code, code);
            }
            for id in &ids[1..] {
                bank.acknowledge(AcknowledgeRequest {
                    instruction_id: id.clone(),
                    outcome: Some(executed(1_000, now)),
                })
                .await
                .expect("acknowledge");
            }
        }));
    }
    for t in tasks {
        t.await.expect("reconnect");
    }
    // Every one of the three hundred answered, once.
    let done = listed(&hub, "", &[pb::InstructionState::Executed]).await;
    assert_eq!(done.len(), 3 * BANKS);
    assert_eq!(listed(&hub, "", &[]).await.len(), 3 * BANKS);
    hub.stop().await;
}

fn passport(n: usize) -> pb::SubjectRef {
    pb::SubjectRef {
        document_type: pb::DocumentType::Passport as i32,
        document_number: format!("E{n:08}"),
    }
}

fn listing(request_id: &str, subject: pb::SubjectRef) -> ListSubjectRequest {
    ListSubjectRequest {
        request_id: request_id.into(),
        subject: Some(subject),
        subject_name: "Zhao Liu".into(),
        legal_basis: "PBOC-2019-ACCOUNT-TRADING".into(),
        case_reference: "SZ-2026-0042".into(),
    }
}

/// The stuck client's HTTP/2 receive window per stream: small, so that not reading stalls the
/// hub's side after a few kilobytes (the defaults would first buffer megabytes in the
/// client). The connection's window holds every stream's, so that unread streams cannot
/// starve the one the test reads at the end.
const STREAM_WINDOW: u32 = 16 * 1024;
const CONNECTION_WINDOW: u32 = 32 * STREAM_WINDOW;

async fn small_window_channel(hub: &TestHub, role: &str, org: &str) -> Channel {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = hub.tls_for(role, org);
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(tls.server_name.clone());
    Endpoint::from_shared(hub.url())
        .and_then(|e| e.tls_config(config))
        .expect("endpoint")
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_client_that_never_reads_its_streams_stalls_only_itself() {
    let hub = TestHub::start().await;
    // The stuck client: its own connections, many streams, none ever read (for now).
    let stuck_bank = stophub::client::bank(small_window_channel(&hub, "bank", "ICBC").await);
    let mut stuck_police =
        stophub::client::police(small_window_channel(&hub, "police", "PSB-SZ-NS").await);
    let big = stuck_police
        .submit_notice(notice(
            &hub,
            "stuck-watched",
            (0..200)
                .map(|k| suspect("ICBC", &format!("622202{k:06}"), 1_000))
                .collect(),
        ))
        .await
        .expect("submit")
        .into_inner()
        .notice
        .unwrap();
    let mut subscriptions = Vec::new();
    let mut syncs = Vec::new();
    for _ in 0..5 {
        subscriptions.push(subscribe(&mut stuck_bank.clone(), 0).await);
        syncs.push(
            stuck_bank
                .clone()
                .sync_blacklist(SyncBlacklistRequest { from_version: 0 })
                .await
                .expect("sync")
                .into_inner(),
        );
    }
    let mut watches = Vec::new();
    for _ in 0..20 {
        watches.push(
            stuck_police
                .watch_notice(WatchNoticeRequest {
                    notice_id: big.notice_id.clone(),
                    until_answered: true,
                })
                .await
                .expect("watch")
                .into_inner(),
        );
    }

    // Everyone else: a healthy ICBC stream that answers everything (the 200 watched ones
    // too), police submitting, reading and listing, each call within a generous bound.
    let healthy = {
        let mut bank = hub.bank("ICBC").await;
        let clock = hub.clock.clone();
        tokio::spawn(async move {
            use stophub::clock::Clock;
            let mut stream = subscribe(&mut bank, 0).await;
            let mut answered = BTreeSet::new();
            while answered.len() < 260 {
                let m = tokio::time::timeout(PROMPTLY, stream.message())
                    .await
                    .expect("the healthy stream keeps delivering")
                    .expect("stream")
                    .expect("message");
                let id = m.instruction.unwrap().instruction_id;
                let ack = AcknowledgeRequest {
                    instruction_id: id.clone(),
                    outcome: Some(executed(1_000, clock.now().millis())),
                };
                tokio::time::timeout(PROMPTLY, bank.acknowledge(ack))
                    .await
                    .expect("an acknowledgement is answered promptly")
                    .expect("acknowledge");
                answered.insert(id);
            }
            answered
        })
    };
    let mut police = hub.police("PSB-SZ").await;
    for k in 0..60 {
        let req = notice(
            &hub,
            &format!("busy-{k}"),
            vec![suspect("ICBC", &format!("622203{k:06}"), 1_000)],
        );
        let n = tokio::time::timeout(PROMPTLY, police.submit_notice(req))
            .await
            .expect("a submission is answered promptly")
            .expect("submit")
            .into_inner()
            .notice
            .unwrap();
        tokio::time::timeout(
            PROMPTLY,
            police.get_notice(GetNoticeRequest {
                notice_id: n.notice_id,
            }),
        )
        .await
        .expect("a read is answered promptly")
        .expect("get notice");
        if k % 2 == 0 {
            tokio::time::timeout(
                PROMPTLY,
                police.list_subject(listing(&format!("busy-list-{k}"), passport(k))),
            )
            .await
            .expect("a listing is answered promptly")
            .expect("list subject");
        }
    }
    let answered = tokio::time::timeout(Duration::from_secs(120), healthy)
        .await
        .expect("the healthy bank finishes")
        .expect("healthy bank");
    assert_eq!(answered.len(), 260);

    // The stuck streams were stalled, not broken and not lost: read now, each catches up.
    // A stalled delivery stream continues in order, then takes new work live.
    let live = stops(&hub, "after-stall", "ICBC", 1).await;
    let mut stalled = subscriptions.pop().unwrap();
    let (mut last, mut bytes, mut largest) = (0, 0, 0);
    loop {
        let m = next(&mut stalled).await;
        assert!(m.sequence > last, "in order: {} after {last}", m.sequence);
        last = m.sequence;
        (bytes, largest) = (bytes + m.encoded_len(), largest.max(m.encoded_len()));
        if m.instruction.unwrap().instruction_id == live[0] {
            break;
        }
    }
    // More than the stream's window and the hub's per-stream queue (64 messages) can hold:
    // the hub really held this stream back while it served everyone else.
    assert!(
        bytes > STREAM_WINDOW as usize + 64 * largest,
        "{bytes} bytes were not enough to stall the stream"
    );
    // A stalled watch ends, all 200 answered, as soon as it is read.
    let mut watch = watches.pop().unwrap();
    let mut states = HashMap::new();
    while let Some(ev) = tokio::time::timeout(PROMPTLY, watch.message())
        .await
        .expect("the watch moves")
        .expect("watch")
    {
        let i = ev.instruction.unwrap();
        states.insert(i.instruction_id.clone(), state_of(&i));
    }
    assert_eq!(states.len(), 200);
    assert!(
        states
            .values()
            .all(|s| *s == pb::InstructionState::Executed)
    );
    // A stalled mirror sync catches up with all thirty listings.
    let mut sync = syncs.pop().unwrap();
    let mut mirror = BTreeSet::new();
    let mut version = 0;
    while mirror.len() < 30 {
        let m = next(&mut sync).await;
        assert!(m.version >= version, "versions never go back");
        version = m.version;
        if let Ok(SyncKind::SnapshotEntry | SyncKind::Listed) = SyncKind::try_from(m.kind) {
            mirror.insert(m.subject.unwrap().document_number);
        }
    }
    assert_eq!(mirror.len(), 30);
    // The hub stops (within its grace period) with the other stuck streams still unread.
    hub.stop().await;
    drop((subscriptions, syncs, watches));
}

/// Six answers to one request: one made the change, five replayed it; all name the same
/// notice and instructions (whose states may have moved on between them).
fn one_effect<'a>(answers: impl Iterator<Item = (bool, Option<&'a Notice>)>) {
    let answers: Vec<_> = answers.collect();
    assert_eq!(answers.len(), 6);
    assert_eq!(answers.iter().filter(|(replayed, _)| !replayed).count(), 1);
    let identity = |n: Option<&Notice>| {
        let n = n.expect("notice");
        let ids: Vec<_> = n
            .instructions
            .iter()
            .map(|i| i.instruction_id.clone())
            .collect();
        (n.notice_id.clone(), ids)
    };
    let first = identity(answers[0].1);
    assert!(answers.iter().all(|(_, n)| identity(*n) == first));
}

#[tokio::test]
async fn a_police_client_that_sends_everything_three_times_has_one_effect() {
    let hub = TestHub::start().await;
    // Three connections, as a retrying client that reconnects would use.
    let police = [
        hub.police("PSB-SZ").await,
        hub.police("PSB-SZ").await,
        hub.police("PSB-SZ").await,
    ];
    macro_rules! thrice {
        ($method:ident, $req:expr) => {{
            let req = $req;
            let (mut a, mut b, mut c) = (police[0].clone(), police[1].clone(), police[2].clone());
            let (x, y, z) = tokio::join!(
                a.$method(req.clone()),
                b.$method(req.clone()),
                c.$method(req.clone())
            );
            let mut answers = vec![x, y, z];
            for p in &police {
                answers.push(p.clone().$method(req.clone()).await);
            }
            answers
                .into_iter()
                .map(|r| r.expect(stringify!($method)).into_inner())
                .collect::<Vec<_>>()
        }};
    }

    let stop_req = notice(
        &hub,
        "thrice-stop",
        vec![
            suspect("ICBC", "6222020000001111", 10_000),
            suspect("CCB", "6217000000002222", 20_000),
        ],
    );
    let answers = thrice!(submit_notice, stop_req);
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert!(answers.iter().all(|a| a.notice == answers[0].notice));
    let stop = answers[0].notice.clone().unwrap();
    let answers = thrice!(
        submit_notice,
        freeze_notice(
            &hub,
            "thrice-freeze",
            vec![suspect("ICBC", "6222020000003333", 50_000)]
        )
    );
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert!(answers.iter().all(|a| a.notice == answers[0].notice));
    let freeze = answers[0].notice.clone().unwrap();

    // ICBC gets the stop and the freeze once each, and answers them.
    let mut bank = hub.bank("ICBC").await;
    let mut stream = subscribe(&mut bank, 0).await;
    let stop_id = stop.instructions[0].instruction_id.clone();
    let freeze_id = freeze.instructions[0].instruction_id.clone();
    for (seq, id) in [(1, &stop_id), (2, &freeze_id)] {
        let m = next(&mut stream).await;
        assert_eq!(
            (m.sequence, &m.instruction.unwrap().instruction_id),
            (seq, id)
        );
    }
    nothing_more(&mut stream).await;
    ack(&hub, "ICBC", &stop_id, executed(10_000, now_ms(&hub))).await;
    ack(
        &hub,
        "ICBC",
        &freeze_id,
        frozen(50_000, 0, vec![], now_ms(&hub)),
    )
    .await;

    // A release and a renewal, each sent three times at once and three times more.
    let answers = thrice!(
        release,
        ReleaseRequest {
            request_id: "thrice-release".into(),
            instruction_id: stop_id.clone(),
            reason: "funds shown to be unrelated".into(),
        }
    );
    one_effect(answers.iter().map(|a| (a.replayed, a.notice.as_ref())));
    let answers = thrice!(
        renew_freeze,
        RenewFreezeRequest {
            request_id: "thrice-renew".into(),
            instruction_id: freeze_id.clone(),
            renew_until: None,
        }
    );
    one_effect(answers.iter().map(|a| (a.replayed, a.notice.as_ref())));
    // One release and one renewal reach the bank, once each, under one sequence each.
    let mut follow_ups = Vec::new();
    for seq in [3, 4] {
        let m = next(&mut stream).await;
        assert_eq!(m.sequence, seq);
        follow_ups.push(pb::Action::try_from(m.instruction.unwrap().action).unwrap());
    }
    nothing_more(&mut stream).await;
    assert_eq!(
        follow_ups,
        [pb::Action::ReleaseStop, pb::Action::RenewFreeze]
    );

    // A listing, likewise.
    let answers = thrice!(list_subject, listing("thrice-list", passport(7)));
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert!(
        answers
            .iter()
            .all(|a| a.entry == answers[0].entry && !a.extended)
    );

    // Exactly one of everything: five instructions (two stops, a freeze, a release, a
    // renewal), and one audit record per accepted request, none refused.
    assert_eq!(listed(&hub, "", &[]).await.len(), 5);
    let (dir, _) = hub.stop().await;
    let store = stophub::store::Store::open(&dir.path().join("data")).expect("store");
    let records = stophub::audit::records_after(&store, 0, 10_000).expect("audit");
    let count = |action: &str| {
        records
            .iter()
            .filter(|r| r.actor == "police:PSB-SZ" && r.action == action)
            .map(|r| {
                assert_eq!(r.outcome, "ok", "{r:?}");
            })
            .count()
    };
    assert_eq!(count("submit_notice"), 2);
    assert_eq!(count("release"), 1);
    assert_eq!(count("renew_freeze"), 1);
    assert_eq!(count("list_subject"), 1);
}
