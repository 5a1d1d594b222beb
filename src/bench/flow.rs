//! The stop-payment flow under load: simulated banks, each on its own mutual-TLS connection
//! with its own certificate, subscribed and receiving (and, for the full cycle, acknowledging);
//! police submitting notices and watching them until every instruction is answered.
//!
//! Latencies are taken in this one process on one monotonic clock: each notice carries the
//! instant it was sent (in its victim transfer's reference), the bank that receives an
//! instruction subtracts it; each acknowledgement's send instant is kept by instruction id, and
//! the police watch that sees the answer subtracts it. So that the watch really is open before
//! the answer arrives, a bank acknowledges a benchmark instruction only once the police watch of
//! its notice has read its initial state.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tonic::transport::Channel;

use super::load::{Latencies, Level};
use crate::clock::{Clock, SystemClock};
use crate::proto::stophub::bank::v1::acknowledge_request::Outcome;
use crate::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use crate::proto::stophub::bank::v1::{AcknowledgeRequest, DeliveryKind, SubscribeRequest};
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1::police_service_client::PoliceServiceClient;
use crate::proto::stophub::police::v1::{SubmitNoticeRequest, WatchNoticeRequest};
use crate::service::convert::timestamp_to_proto;

/// Case references of notices that banks acknowledge (the full cycle); others are only received.
const CYCLE_CASE: &str = "CYCLE-";
const SUBMIT_CASE: &str = "BENCH-";

/// A latency sample: when the later event happened (ns since the epoch) and the latency (ns).
#[derive(Debug, Default)]
struct Stamped(Mutex<Vec<(u64, u64)>>);

impl Stamped {
    fn push(&self, sent: u64, seen: u64) {
        if let Ok(mut v) = self.0.lock() {
            v.push((seen, seen.saturating_sub(sent)));
        }
    }
}

/// Something keyed by a string id, in shards so that 100 banks and the police do not queue on
/// one lock.
struct Sharded<V>(Vec<Mutex<HashMap<String, V>>>);

impl<V> Sharded<V> {
    fn new() -> Self {
        Self((0..64).map(|_| Mutex::new(HashMap::new())).collect())
    }
    fn with<R>(&self, id: &str, f: impl FnOnce(&mut HashMap<String, V>) -> R) -> Option<R> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let shard = &self.0[(h.finish() as usize) % self.0.len()];
        shard.lock().ok().map(|mut m| f(&mut m))
    }
}

/// Whether a notice's police watch is open yet; banks wait for it before answering.
enum Gate {
    Open,
    Waiting(Vec<oneshot::Sender<()>>),
}

pub struct Flow {
    run: u64,
    epoch: Instant,
    pub institutions: Vec<String>,
    counter: AtomicU64,
    /// Instructions the hub accepted, and instructions the banks received.
    pub submitted: AtomicU64,
    pub received: AtomicU64,
    pub acked: AtomicU64,
    pub ack_errors: AtomicU64,
    receive: Stamped,
    answer: Stamped,
    gates: Sharded<Gate>,
    ack_sent: Sharded<u64>,
}

impl Flow {
    pub fn new(institutions: Vec<String>) -> Arc<Flow> {
        Arc::new(Flow {
            run: SystemClock.now().millis() as u64 % 1_000_000,
            epoch: Instant::now(),
            institutions,
            counter: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            received: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            ack_errors: AtomicU64::new(0),
            receive: Stamped::default(),
            answer: Stamped::default(),
            gates: Sharded::new(),
            ack_sent: Sharded::new(),
        })
    }

    fn ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// A fresh stop-payment notice with `accounts` suspect accounts at successive banks,
    /// stamped with the instant it is built (just before it is sent).
    pub(super) fn notice(&self, accounts: usize, cycle: bool) -> SubmitNoticeRequest {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let run = self.run;
        let suspects = (0..accounts)
            .map(|a| pb::SuspectAccount {
                institution_code: self.institutions[(n as usize + a) % self.institutions.len()]
                    .clone(),
                account_number: format!("62{run:06}{n:010}{a:03}"),
                account_name: "Bench Suspect".into(),
                account_kind: pb::AccountKind::BankAccount as i32,
                amount_fen: 10_000,
                ..Default::default()
            })
            .collect();
        let case = if cycle { CYCLE_CASE } else { SUBMIT_CASE };
        SubmitNoticeRequest {
            request_id: format!("bench-{run}-{n}"),
            case_reference: format!("{case}{run}"),
            action: pb::Action::StopPayment as i32,
            victim_transfer: Some(pb::VictimTransfer {
                institution_code: self.institutions[0].clone(),
                account_number: "6217000011112222".into(),
                account_name: "Bench Victim".into(),
                currency: "CNY".into(),
                amount_fen: 10_000,
                transfer_time: Some(timestamp_to_proto(SystemClock.now().plus_millis(-60_000))),
                transaction_reference: format!("T{}", self.ns()),
            }),
            suspect_accounts: suspects,
            ..Default::default()
        }
    }

    /// One durable submission; the banks only receive its instructions.
    pub async fn submit(&self, police: &mut PoliceServiceClient<Channel>, accounts: usize) -> bool {
        match police.submit_notice(self.notice(accounts, false)).await {
            Ok(_) => {
                self.submitted.fetch_add(accounts as u64, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// One full cycle: submit, watch until every instruction is answered (the banks receive
    /// and acknowledge meanwhile).
    pub async fn cycle(&self, police: &mut PoliceServiceClient<Channel>) -> bool {
        let Ok(answer) = police.submit_notice(self.notice(1, true)).await else {
            return false;
        };
        self.submitted.fetch_add(1, Ordering::Relaxed);
        let Some(notice) = answer.into_inner().notice else {
            return false;
        };
        let id = notice.notice_id;
        let count = notice.instructions.len();
        let done = self.watch(police, &id, count).await;
        self.close_gate(&id);
        done
    }

    async fn watch(
        &self,
        police: &mut PoliceServiceClient<Channel>,
        id: &str,
        count: usize,
    ) -> bool {
        let request = WatchNoticeRequest {
            notice_id: id.to_owned(),
            until_answered: true,
        };
        let Ok(stream) = police.watch_notice(request).await else {
            return false;
        };
        let mut stream = stream.into_inner();
        let (mut initial, mut answered) = (0, 0);
        while let Ok(Some(event)) = stream.message().await {
            let seen = self.ns();
            let Some(i) = event.instruction else { continue };
            if event.initial {
                initial += 1;
                if initial == count {
                    self.open_gate(id);
                }
                continue;
            }
            if i.acknowledgement.is_some() {
                answered += 1;
                if let Some(Some(sent)) = self
                    .ack_sent
                    .with(&i.instruction_id, |m| m.remove(&i.instruction_id))
                {
                    self.answer.push(sent, seen);
                }
                if answered == count {
                    return true;
                }
            }
        }
        false
    }

    fn open_gate(&self, id: &str) {
        let waiting = self.gates.with(id, |m| m.insert(id.to_owned(), Gate::Open));
        if let Some(Some(Gate::Waiting(senders))) = waiting {
            for s in senders {
                let _ = s.send(());
            }
        }
    }

    /// Forgets a notice's gate, letting any bank still waiting on it go on.
    fn close_gate(&self, id: &str) {
        if let Some(Some(Gate::Waiting(senders))) = self.gates.with(id, |m| m.remove(id)) {
            for s in senders {
                let _ = s.send(());
            }
        }
    }

    async fn wait_gate(&self, id: &str) {
        let rx = self.gates.with(id, |m| match m.get_mut(id) {
            Some(Gate::Open) => None,
            Some(Gate::Waiting(senders)) => {
                let (tx, rx) = oneshot::channel();
                senders.push(tx);
                Some(rx)
            }
            None => {
                let (tx, rx) = oneshot::channel();
                m.insert(id.to_owned(), Gate::Waiting(vec![tx]));
                Some(rx)
            }
        });
        if let Some(Some(rx)) = rx {
            // A gate never opened (the watch failed) is closed after the cycle gives up.
            let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
        }
    }

    /// Submit -> bank-receive latencies of instructions sent and received within `level`'s
    /// measured window (taking them all out).
    pub fn receive_latencies(&self, level: &Level) -> Latencies {
        self.take(&self.receive, level)
    }

    /// Acknowledgement -> police-watch latencies within `level`'s window.
    pub fn answer_latencies(&self, level: &Level) -> Latencies {
        self.take(&self.answer, level)
    }

    fn take(&self, from: &Stamped, level: &Level) -> Latencies {
        let (start, end) = match level.window {
            Some((start, end)) => (self.since_epoch(start), self.since_epoch(end)),
            None => (0, u64::MAX),
        };
        let all = from
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let mut v: Vec<u64> = all
            .into_iter()
            .filter(|&(seen, lat)| seen <= end && seen.saturating_sub(lat) >= start)
            .map(|(_, lat)| lat)
            .collect();
        v.sort_unstable();
        Latencies(v)
    }

    /// Waits until the banks have received every instruction accepted so far (at most
    /// `within`); returns how many are missing.
    pub async fn drain(&self, within: Duration) -> u64 {
        let until = Instant::now() + within;
        loop {
            let (s, r) = (
                self.submitted.load(Ordering::Relaxed),
                self.received.load(Ordering::Relaxed),
            );
            if r >= s || Instant::now() >= until {
                return s.saturating_sub(r);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts one simulated bank: subscribe on its own connection, receive, and acknowledge the
/// full cycle's instructions. Returns once the stream is open.
pub async fn start_bank(flow: Arc<Flow>, channel: Channel) -> anyhow::Result<()> {
    let mut bank = crate::client::bank(channel);
    let mut stream = bank
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await?
        .into_inner();
    tokio::spawn(async move {
        while let Ok(Some(m)) = stream.message().await {
            let seen = flow.ns();
            let Some(i) = m.instruction else { continue };
            // A redelivery counts: after a restart, open instructions all come again.
            if m.kind != DeliveryKind::Instruction as i32 {
                continue;
            }
            flow.received.fetch_add(1, Ordering::Relaxed);
            let stamp = i.victim_transfer.as_ref().and_then(|v| {
                v.transaction_reference
                    .strip_prefix('T')
                    .and_then(|t| t.parse::<u64>().ok())
            });
            if let Some(sent) = stamp {
                flow.receive.push(sent, seen);
            }
            if i.case_reference.starts_with(CYCLE_CASE) {
                let (flow, mut bank) = (flow.clone(), bank.clone());
                tokio::spawn(async move { acknowledge(&flow, &mut bank, i).await });
            }
        }
    });
    Ok(())
}

async fn acknowledge(flow: &Flow, bank: &mut BankServiceClient<Channel>, i: pb::Instruction) {
    flow.wait_gate(&i.notice_id).await;
    let amount = i.account.as_ref().map_or(0, |a| a.amount_fen);
    let id = i.instruction_id;
    let sent = flow.ns();
    flow.ack_sent.with(&id, |m| m.insert(id.clone(), sent));
    let request = AcknowledgeRequest {
        instruction_id: id,
        outcome: Some(Outcome::Executed(pb::Executed {
            amount_held_fen: amount,
            balance_fen: amount,
            executed_at: Some(timestamp_to_proto(SystemClock.now())),
            ..Default::default()
        })),
    };
    match bank.acknowledge(request).await {
        Ok(_) => flow.acked.fetch_add(1, Ordering::Relaxed),
        Err(_) => flow.ack_errors.fetch_add(1, Ordering::Relaxed),
    };
}
