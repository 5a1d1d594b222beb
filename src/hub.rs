//! The one orchestrator. Every change of state runs here, on one writer thread:
//! `now` -> domain transition -> one atomic store commit; then, for a whole batch of commands,
//! one durable sync (group commit); then replies, watcher events and stream wake-ups.
//!
//! One writer means no write conflicts and a total order of transitions (two identical
//! submissions racing each other cannot both create a notice); batching means durability
//! costs one fsync per batch, not per request. Reads go straight to the store from any task.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::domain::ids::Timestamp;
use crate::domain::instruction::{self, Applied, Event, InstructionRecord, Outcome, State};
use crate::domain::notice::{NewNotice, NoticeRecord, RequestRecord};
use crate::error::{Error, Result};
use crate::participants::Registry;
use crate::store::{Store, TreeId, Writes, decode, keys};

/// Limits and defaults of the hub's rules.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The largest amount, in fen, any request may name.
    pub max_amount_fen: i64,
    /// How far in the future of the hub's clock a client-supplied instant may be, in ms.
    pub max_future_skew_ms: i64,
    /// Time an institution has to answer a stop-payment, in ms.
    pub stop_answer_deadline_ms: i64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_amount_fen: 1_000_000_000_000, // 10 billion yuan
            max_future_skew_ms: 5 * 60 * 1000,
            stop_answer_deadline_ms: 5 * 60 * 1000,
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub notice: NoticeRecord,
    pub instructions: Vec<InstructionRecord>,
    pub replayed: bool,
}

/// The answer to an acknowledgement.
#[derive(Debug, Clone)]
pub struct Acked {
    pub instruction: InstructionRecord,
    pub duplicate: bool,
}

enum Command {
    Submit {
        agency: String,
        notice: Box<NewNotice>,
        reply: oneshot::Sender<Result<Submitted>>,
    },
    Acknowledge {
        institution: String,
        instruction_id: String,
        outcome: Outcome,
        reply: oneshot::Sender<Result<Acked>>,
    },
    Delivered {
        instruction_id: String,
    },
    Stop,
}

/// At most this many commands share one sync.
const MAX_BATCH: usize = 2048;

pub struct Hub {
    store: Arc<Store>,
    registry: Arc<Registry>,
    config: HubConfig,
    clock: SharedClock,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<InstructionRecord>>,
    /// Per institution: the highest sequence that is durable, so streams never send what a
    /// crash could take back.
    watermarks: Arc<HashMap<String, watch::Sender<u64>>>,
    shutdown: CancellationToken,
}

/// Joins the writer thread after the last command has been synced.
pub struct WriterHandle {
    commands: mpsc::Sender<Command>,
    thread: JoinHandle<()>,
}

impl WriterHandle {
    /// Processes everything already queued, syncs it, and stops the writer.
    pub async fn stop(self) {
        let _ = self.commands.send(Command::Stop).await;
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

impl Hub {
    pub fn start(
        store: Arc<Store>,
        registry: Arc<Registry>,
        config: HubConfig,
        clock: SharedClock,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Hub>, WriterHandle)> {
        let mut next_seq = HashMap::new();
        let mut watermarks = HashMap::new();
        for institution in registry.institutions() {
            let last = store.last_sequence(&institution.code)?;
            next_seq.insert(institution.code.clone(), last);
            watermarks.insert(institution.code.clone(), watch::Sender::new(last));
        }
        let watermarks = Arc::new(watermarks);
        let (events, _) = broadcast::channel(4096);
        let (tx, rx) = mpsc::channel(MAX_BATCH * 2);
        let writer = Writer {
            store: store.clone(),
            clock: clock.clone(),
            config: config.clone(),
            next_seq,
            events: events.clone(),
            watermarks: watermarks.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("stophub-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Store(format!("cannot start the writer thread: {e}")))?;
        let hub = Arc::new(Hub {
            store,
            registry,
            config,
            clock,
            commands: tx.clone(),
            events,
            watermarks,
            shutdown,
        });
        Ok((
            hub,
            WriterHandle {
                commands: tx,
                thread,
            },
        ))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    pub fn config(&self) -> &HubConfig {
        &self.config
    }
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<InstructionRecord>> {
        self.events.subscribe()
    }
    pub fn watermark(&self, institution: &str) -> Option<watch::Receiver<u64>> {
        self.watermarks.get(institution).map(|w| w.subscribe())
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Stores a validated notice and its instructions durably, or returns the original answer
    /// for an identical retry.
    pub async fn submit(&self, agency: &str, notice: NewNotice) -> Result<Submitted> {
        self.call(|reply| Command::Submit {
            agency: agency.to_owned(),
            notice: Box::new(notice),
            reply,
        })
        .await
    }

    /// Records an institution's answer durably.
    pub async fn acknowledge(
        &self,
        institution: &str,
        instruction_id: &str,
        outcome: Outcome,
    ) -> Result<Acked> {
        self.call(|reply| Command::Acknowledge {
            institution: institution.to_owned(),
            instruction_id: instruction_id.to_owned(),
            outcome,
            reply,
        })
        .await
    }

    /// Notes that an instruction went out on its institution's stream. Fire and forget: it
    /// becomes durable with the next batch.
    pub fn mark_delivered(&self, instruction_id: &str) {
        let _ = self.commands.try_send(Command::Delivered {
            instruction_id: instruction_id.to_owned(),
        });
    }

    /// The notice's instructions as stored now.
    pub fn notice_instructions(&self, notice: &NoticeRecord) -> Result<Vec<InstructionRecord>> {
        notice
            .instruction_ids
            .iter()
            .map(|id| {
                self.store.instruction(id)?.ok_or_else(|| {
                    Error::Store(format!(
                        "instruction {id} of {} is missing",
                        notice.notice_id
                    ))
                })
            })
            .collect()
    }
}

/// The writer thread's state.
struct Writer {
    store: Arc<Store>,
    clock: SharedClock,
    config: HubConfig,
    /// The last sequence given to each institution, as committed.
    next_seq: HashMap<String, u64>,
    events: broadcast::Sender<Arc<InstructionRecord>>,
    watermarks: Arc<HashMap<String, watch::Sender<u64>>>,
}

/// A reply held back until the batch is durable.
enum Pending {
    Submit(oneshot::Sender<Result<Submitted>>, Result<Submitted>),
    Ack(oneshot::Sender<Result<Acked>>, Result<Acked>),
}

/// One batch of commands, staged for one commit and one sync.
#[derive(Default)]
struct Batch {
    writes: Writes,
    /// Sequences given out in this batch, on top of `Writer::next_seq`.
    seqs: HashMap<String, u64>,
    /// Changed instructions, to publish after the sync.
    events: Vec<Arc<InstructionRecord>>,
    /// Whether a caller waits on these writes (then they must be synced before replying).
    must_sync: bool,
}

impl Batch {
    /// Reads through the staged writes to the store.
    fn read<V: DeserializeOwned>(
        &self,
        store: &Store,
        tree: TreeId,
        key: &[u8],
    ) -> Result<Option<V>> {
        match self.writes.staged(tree, key) {
            Some(Some(bytes)) => decode(bytes).map(Some),
            Some(None) => Ok(None),
            None => store.get(tree, key),
        }
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut commands = vec![first];
            while commands.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => commands.push(cmd),
                    Err(_) => break,
                }
            }
            let started = std::time::Instant::now();
            let mut pending = Vec::with_capacity(commands.len());
            let mut batch = Batch::default();
            let mut stop = false;
            for cmd in commands {
                match cmd {
                    Command::Submit {
                        agency,
                        notice,
                        reply,
                    } => {
                        let result = self.submit(&agency, &notice, &mut batch);
                        pending.push(Pending::Submit(reply, result));
                    }
                    Command::Acknowledge {
                        institution,
                        instruction_id,
                        outcome,
                        reply,
                    } => {
                        let result =
                            self.acknowledge(&institution, &instruction_id, outcome, &mut batch);
                        pending.push(Pending::Ack(reply, result));
                    }
                    Command::Delivered { instruction_id } => {
                        if let Err(e) = self.delivered(&instruction_id, &mut batch) {
                            tracing::warn!(%instruction_id, error = %e, "could not record delivery");
                        }
                    }
                    Command::Stop => stop = true,
                }
            }
            let applied_us = started.elapsed().as_micros() as u64;
            // Delivery marks alone are not worth an fsync: they ride with the next one.
            let done = self.store.commit(&batch.writes).and_then(|()| {
                if batch.must_sync {
                    self.store.sync()
                } else {
                    Ok(())
                }
            });
            tracing::debug!(
                commands = pending.len(),
                applied_us,
                committed_us = started.elapsed().as_micros() as u64 - applied_us,
                "batch committed"
            );
            if let Err(e) = &done {
                tracing::error!(error = %e, "commit or sync failed; answering the batch with UNAVAILABLE");
            }
            for p in pending {
                match p {
                    Pending::Submit(reply, result) => {
                        let _ = reply.send(after_sync(result, &done));
                    }
                    Pending::Ack(reply, result) => {
                        let _ = reply.send(after_sync(result, &done));
                    }
                }
            }
            if done.is_ok() {
                self.next_seq.extend(batch.seqs);
                self.publish(batch.events);
            }
            if stop {
                break;
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
    }

    fn publish(&self, events: Vec<Arc<InstructionRecord>>) {
        for (institution, seq) in &self.next_seq {
            if let Some(w) = self.watermarks.get(institution) {
                w.send_if_modified(|cur| {
                    let changed = *cur != *seq;
                    *cur = *seq;
                    changed
                });
            }
        }
        for event in events {
            let _ = self.events.send(event);
        }
    }

    fn instruction(&self, batch: &Batch, id: &str) -> Result<Option<InstructionRecord>> {
        batch.read(&self.store, TreeId::Instructions, id.as_bytes())
    }

    fn submit(&mut self, agency: &str, notice: &NewNotice, batch: &mut Batch) -> Result<Submitted> {
        let hash = notice.payload_hash();
        let request_key = keys::request(agency, &notice.request_id);
        if let Some(previous) =
            batch.read::<RequestRecord>(&self.store, TreeId::Requests, &request_key)?
        {
            if previous.payload_hash != hash {
                return Err(Error::AlreadyExists(format!(
                    "request_id: {:?} was already used by agency {agency} for notice {} with a different payload; \
                     a request_id names one notice only",
                    notice.request_id, previous.notice_id
                )));
            }
            let record: NoticeRecord = batch
                .read(&self.store, TreeId::Notices, previous.notice_id.as_bytes())?
                .ok_or_else(|| Error::Store(format!("notice {} is missing", previous.notice_id)))?;
            let instructions = record
                .instruction_ids
                .iter()
                .map(|id| {
                    self.instruction(batch, id)?
                        .ok_or_else(|| Error::Store(format!("instruction {id} is missing")))
                })
                .collect::<Result<Vec<_>>>()?;
            // The original may be in this very batch: answer once it is durable.
            batch.must_sync = true;
            return Ok(Submitted {
                notice: record,
                instructions,
                replayed: true,
            });
        }

        let now = self.clock.now();
        let notice_id = keys::notice_id(self.store.next_id()?);
        let mut instructions = Vec::with_capacity(notice.accounts.len());
        let mut seqs: HashMap<&str, u64> = HashMap::new();
        for account in &notice.accounts {
            let institution = account.institution_code.as_str();
            let last = match seqs.get(institution) {
                Some(s) => *s,
                None => *batch
                    .seqs
                    .get(institution)
                    .or_else(|| self.next_seq.get(institution))
                    .ok_or_else(|| {
                        Error::invalid(
                            "suspect_accounts.institution_code",
                            format!("{institution} is not registered"),
                        )
                    })?,
            };
            let seq = last + 1;
            seqs.insert(institution, seq);
            instructions.push(InstructionRecord {
                instruction_id: keys::instruction_id(self.store.next_id()?),
                notice_id: notice_id.clone(),
                case_reference: notice.case_reference.clone(),
                police_agency: agency.to_owned(),
                action: notice.action,
                account: account.clone(),
                victim: notice.victim.clone(),
                state: State::Pending,
                sequence: seq,
                created_at: now,
                answer_due_at: now.plus_millis(self.config.stop_answer_deadline_ms),
                delivered_at: None,
                ack: None,
                updated_at: now,
                version: 1,
            });
        }
        // Nothing is staged until the whole notice is known to be good.
        for rec in &instructions {
            let id = rec.instruction_id.as_bytes();
            let key = keys::delivery(rec.institution(), rec.sequence);
            batch.writes.put(TreeId::Instructions, id, rec);
            batch.writes.put_raw(TreeId::Outbox, key.clone(), id);
            batch.writes.put_raw(TreeId::Unacked, key, id);
        }
        for (institution, seq) in seqs {
            batch.seqs.insert(institution.to_owned(), seq);
        }
        let record = NoticeRecord {
            notice_id: notice_id.clone(),
            request_id: notice.request_id.clone(),
            case_reference: notice.case_reference.clone(),
            police_agency: agency.to_owned(),
            action: notice.action,
            victim: notice.victim.clone(),
            instruction_ids: instructions
                .iter()
                .map(|i| i.instruction_id.clone())
                .collect(),
            created_at: now,
            payload_hash: hash.clone(),
        };
        batch
            .writes
            .put(TreeId::Notices, notice_id.as_bytes(), &record);
        batch.writes.put(
            TreeId::Requests,
            request_key,
            &RequestRecord {
                notice_id: notice_id.clone(),
                payload_hash: hash,
            },
        );
        batch.must_sync = true;
        batch
            .events
            .extend(instructions.iter().cloned().map(Arc::new));
        tracing::info!(%notice_id, %agency, instructions = instructions.len(), "notice accepted");
        Ok(Submitted {
            notice: record,
            instructions,
            replayed: false,
        })
    }

    fn acknowledge(
        &mut self,
        institution: &str,
        instruction_id: &str,
        outcome: Outcome,
        batch: &mut Batch,
    ) -> Result<Acked> {
        let rec = self.instruction(batch, instruction_id)?.ok_or_else(|| {
            Error::NotFound(format!("instruction_id: no instruction {instruction_id}"))
        })?;
        if rec.institution() != institution {
            return Err(Error::PermissionDenied(format!(
                "instruction {instruction_id} is addressed to another institution; {institution} may answer only its own"
            )));
        }
        // A duplicate is answered only once its original is durable: it waits for this batch's sync.
        batch.must_sync = true;
        match instruction::apply(&rec, &Event::Acknowledged(outcome), self.clock.now())? {
            Applied::Changed(next) => {
                batch
                    .writes
                    .put(TreeId::Instructions, instruction_id.as_bytes(), &*next);
                batch
                    .writes
                    .remove(TreeId::Unacked, keys::delivery(institution, next.sequence));
                batch.events.push(Arc::new((*next).clone()));
                tracing::info!(%instruction_id, %institution, state = ?next.state, "instruction answered");
                Ok(Acked {
                    instruction: *next,
                    duplicate: false,
                })
            }
            Applied::Unchanged => Ok(Acked {
                instruction: rec,
                duplicate: true,
            }),
        }
    }

    fn delivered(&mut self, instruction_id: &str, batch: &mut Batch) -> Result<()> {
        let Some(rec) = self.instruction(batch, instruction_id)? else {
            return Ok(());
        };
        if let Applied::Changed(next) =
            instruction::apply(&rec, &Event::Delivered, self.clock.now())?
        {
            batch
                .writes
                .put(TreeId::Instructions, instruction_id.as_bytes(), &*next);
            batch.events.push(Arc::new(*next));
        }
        Ok(())
    }
}

/// A reply is only as good as the sync that made it durable.
fn after_sync<T>(result: Result<T>, synced: &Result<()>) -> Result<T> {
    match (result, synced) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(Error::Store(e.to_string())),
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::ids::{AccountNumber, Fen, InstitutionCode};
    use crate::domain::notice::{AccountKind, Action, SuspectAccount, VictimTransfer};

    fn start() -> (tempfile::TempDir, Arc<Hub>, WriterHandle) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let registry = Arc::new(Registry::from_file(crate::participants::demo()).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let (hub, writer) = Hub::start(
            store,
            registry,
            HubConfig::default(),
            clock,
            CancellationToken::new(),
        )
        .unwrap();
        (dir, hub, writer)
    }

    fn notice(request_id: &str, account: &str, amount: i64) -> NewNotice {
        NewNotice {
            request_id: request_id.into(),
            case_reference: "C-1".into(),
            action: Action::StopPayment,
            victim: VictimTransfer {
                institution_code: InstitutionCode::parse("CCB").unwrap(),
                account_number: AccountNumber::parse("621700001111").unwrap(),
                account_name: "Li Si".into(),
                currency: "CNY".into(),
                amount: Fen::new_unchecked(amount),
                transfer_time: Timestamp(1_799_999_000_000),
                transaction_reference: "T-1".into(),
            },
            accounts: vec![SuspectAccount {
                institution_code: InstitutionCode::parse("ICBC").unwrap(),
                account_number: AccountNumber::parse(account).unwrap(),
                account_name: "Wang Wu".into(),
                account_kind: AccountKind::Bank,
                amount: Fen::new_unchecked(amount),
            }],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submissions_share_syncs() {
        let (_dir, hub, writer) = start();
        let before = hub.store().sync_count();
        let tasks: Vec<_> = (0..64)
            .map(|n| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    hub.submit(
                        "PSB-SZ",
                        notice(&format!("r-{n}"), &format!("62220200{n:04}"), 100),
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap().unwrap().replayed);
        }
        let syncs = hub.store().sync_count() - before;
        assert!(
            syncs < 64,
            "64 concurrent submissions took {syncs} syncs: no group commit"
        );
        // Sequences are dense and unique.
        assert_eq!(hub.store().last_sequence("ICBC").unwrap(), 64);
        writer.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_identical_submissions_create_one_notice() {
        let (_dir, hub, writer) = start();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    hub.submit("PSB-SZ", notice("same", "622202001111", 100))
                        .await
                })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        let mut fresh = 0;
        for t in tasks {
            let done = t.await.unwrap().unwrap();
            ids.insert(done.notice.notice_id.clone());
            fresh += usize::from(!done.replayed);
        }
        assert_eq!((ids.len(), fresh), (1, 1));
        // A racing conflicting payload is refused whichever batch it lands in.
        let err = hub
            .submit("PSB-SZ", notice("same", "622202001111", 200))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)));
        assert_eq!(hub.store().last_sequence("ICBC").unwrap(), 1);
        writer.stop().await;
    }
}
