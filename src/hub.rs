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

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::domain::ids::Timestamp;
use crate::domain::instruction::{self, Applied, Event, InstructionRecord, Outcome, State};
use crate::domain::notice::{NewNotice, NoticeRecord, RequestRecord};
use crate::error::{Error, Result};
use crate::participants::Registry;
use crate::store::{Store, TreeId, Writes, keys};

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
    next_seq: HashMap<String, u64>,
    events: broadcast::Sender<Arc<InstructionRecord>>,
    watermarks: Arc<HashMap<String, watch::Sender<u64>>>,
}

/// A reply held back until the batch is durable.
enum Pending {
    Submit(oneshot::Sender<Result<Submitted>>, Result<Submitted>),
    Ack(oneshot::Sender<Result<Acked>>, Result<Acked>),
}

/// What one command changed, to publish after the sync.
#[derive(Default)]
struct Effects {
    events: Vec<Arc<InstructionRecord>>,
    wrote: bool,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            let mut pending = Vec::with_capacity(batch.len());
            let mut effects = Effects::default();
            let mut stop = false;
            for cmd in batch {
                match cmd {
                    Command::Submit {
                        agency,
                        notice,
                        reply,
                    } => {
                        let result = self.submit(&agency, &notice, &mut effects);
                        pending.push(Pending::Submit(reply, result));
                    }
                    Command::Acknowledge {
                        institution,
                        instruction_id,
                        outcome,
                        reply,
                    } => {
                        let result =
                            self.acknowledge(&institution, &instruction_id, outcome, &mut effects);
                        pending.push(Pending::Ack(reply, result));
                    }
                    Command::Delivered { instruction_id } => {
                        if let Err(e) = self.delivered(&instruction_id, &mut effects) {
                            tracing::warn!(%instruction_id, error = %e, "could not record delivery");
                        }
                    }
                    Command::Stop => stop = true,
                }
            }
            let synced = if effects.wrote {
                self.store.sync()
            } else {
                Ok(())
            };
            if let Err(e) = &synced {
                tracing::error!(error = %e, "sync failed; answering the batch with UNAVAILABLE");
            }
            for p in pending {
                match p {
                    Pending::Submit(reply, result) => {
                        let _ = reply.send(after_sync(result, &synced));
                    }
                    Pending::Ack(reply, result) => {
                        let _ = reply.send(after_sync(result, &synced));
                    }
                }
            }
            if synced.is_ok() {
                self.publish(effects);
            }
            if stop {
                break;
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
    }

    fn publish(&self, effects: Effects) {
        for (institution, seq) in &self.next_seq {
            if let Some(w) = self.watermarks.get(institution) {
                w.send_if_modified(|cur| {
                    let changed = *cur != *seq;
                    *cur = *seq;
                    changed
                });
            }
        }
        for event in effects.events {
            let _ = self.events.send(event);
        }
    }

    fn submit(
        &mut self,
        agency: &str,
        notice: &NewNotice,
        effects: &mut Effects,
    ) -> Result<Submitted> {
        let hash = notice.payload_hash();
        if let Some(previous) = self.store.request(agency, &notice.request_id)? {
            if previous.payload_hash != hash {
                return Err(Error::AlreadyExists(format!(
                    "request_id: {:?} was already used by agency {agency} for notice {} with a different payload; \
                     a request_id names one notice only",
                    notice.request_id, previous.notice_id
                )));
            }
            let record = self
                .store
                .notice(&previous.notice_id)?
                .ok_or_else(|| Error::Store(format!("notice {} is missing", previous.notice_id)))?;
            let instructions = record
                .instruction_ids
                .iter()
                .map(|id| {
                    self.store
                        .instruction(id)?
                        .ok_or_else(|| Error::Store(format!("instruction {id} is missing")))
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Submitted {
                notice: record,
                instructions,
                replayed: true,
            });
        }

        let now = self.clock.now();
        let notice_id = keys::notice_id(self.store.next_id()?);
        let mut writes = Writes::default();
        let mut seqs: HashMap<String, u64> = HashMap::new();
        let mut instructions = Vec::with_capacity(notice.accounts.len());
        for account in &notice.accounts {
            let institution = account.institution_code.as_str();
            let base = *self.next_seq.get(institution).ok_or_else(|| {
                Error::invalid(
                    "suspect_accounts.institution_code",
                    format!("{institution} is not registered"),
                )
            })?;
            let seq = seqs.entry(institution.to_owned()).or_insert(base);
            *seq += 1;
            let id = keys::instruction_id(self.store.next_id()?);
            let rec = InstructionRecord {
                instruction_id: id.clone(),
                notice_id: notice_id.clone(),
                case_reference: notice.case_reference.clone(),
                police_agency: agency.to_owned(),
                action: notice.action,
                account: account.clone(),
                victim: notice.victim.clone(),
                state: State::Pending,
                sequence: *seq,
                created_at: now,
                answer_due_at: now.plus_millis(self.config.stop_answer_deadline_ms),
                delivered_at: None,
                ack: None,
                updated_at: now,
                version: 1,
            };
            writes.put(TreeId::Instructions, id.as_bytes(), &rec);
            writes.put_raw(
                TreeId::Outbox,
                keys::delivery(institution, *seq),
                id.as_bytes(),
            );
            writes.put_raw(
                TreeId::Unacked,
                keys::delivery(institution, *seq),
                id.as_bytes(),
            );
            instructions.push(rec);
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
        writes.put(TreeId::Notices, notice_id.as_bytes(), &record);
        writes.put(
            TreeId::Requests,
            keys::request(agency, &notice.request_id),
            &RequestRecord {
                notice_id: notice_id.clone(),
                payload_hash: hash,
            },
        );
        self.store.commit(&writes)?;
        effects.wrote = true;
        self.next_seq.extend(seqs);
        effects
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
        effects: &mut Effects,
    ) -> Result<Acked> {
        let rec = self.store.instruction(instruction_id)?.ok_or_else(|| {
            Error::NotFound(format!("instruction_id: no instruction {instruction_id}"))
        })?;
        if rec.institution() != institution {
            return Err(Error::PermissionDenied(format!(
                "instruction {instruction_id} is addressed to another institution; {institution} may answer only its own"
            )));
        }
        match instruction::apply(&rec, &Event::Acknowledged(outcome), self.clock.now())? {
            Applied::Changed(next) => {
                let mut writes = Writes::default();
                writes.put(TreeId::Instructions, instruction_id.as_bytes(), &*next);
                writes.remove(TreeId::Unacked, keys::delivery(institution, next.sequence));
                self.store.commit(&writes)?;
                effects.wrote = true;
                effects.events.push(Arc::new((*next).clone()));
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

    fn delivered(&mut self, instruction_id: &str, effects: &mut Effects) -> Result<()> {
        let Some(rec) = self.store.instruction(instruction_id)? else {
            return Ok(());
        };
        if let Applied::Changed(next) =
            instruction::apply(&rec, &Event::Delivered, self.clock.now())?
        {
            let mut writes = Writes::default();
            writes.put(TreeId::Instructions, instruction_id.as_bytes(), &*next);
            self.store.commit(&writes)?;
            effects.wrote = true;
            effects.events.push(Arc::new(*next));
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
