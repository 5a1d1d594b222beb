//! The one orchestrator. Every change of state runs on one writer thread ([`writer`]):
//! `now` -> domain transition -> staged writes; then, for a whole batch of commands, one
//! atomic store commit and one durable sync (group commit); then replies, watcher events and
//! stream wake-ups.
//!
//! One writer means no write conflicts and a total order of transitions (two identical
//! submissions racing each other cannot both create a notice); batching means durability
//! costs one fsync per batch, not per request. Reads go straight to the store from any task.

mod blacklist;
mod lifecycle;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::domain::blacklist::{Appeal, BasisTable, Entry, NewListing, Subject};
use crate::domain::ids::Timestamp;
use crate::domain::instruction::{InstructionRecord, Outcome};
use crate::domain::notice::{NewFollowUp, NewNotice, NoticeRecord};
use crate::domain::policy::Policy;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::participants::Registry;
use crate::store::CheckRecord;

/// The `meta` counter of blacklist entries in force.
pub(crate) const BLACKLIST_IN_FORCE: &str = "blacklist_in_force";
use crate::store::Store;

/// Limits and the time rules.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The largest amount, in fen, any request may name.
    pub max_amount_fen: i64,
    /// How far in the future of the hub's clock a client-supplied instant may be, in ms.
    pub max_future_skew_ms: i64,
    pub policy: Policy,
    /// The legal bases of the blacklist.
    pub bases: BasisTable,
    /// Blacklist changes kept for replay; a bank further behind gets a fresh snapshot.
    pub blacklist_log_retain: u64,
    /// Blacklist checks allowed per institution per second (and as a burst).
    pub checks_per_second: u32,
    /// Per-caller limits on calls and open streams.
    pub callers: crate::limits::CallerLimits,
    /// Instructions an institution may have awaiting its answer; a notice that would go past
    /// it is refused (RESOURCE_EXHAUSTED), so police learn at once that the bank is far behind.
    pub max_backlog: u64,
    /// Free disk space kept in reserve: below it the hub refuses writes with UNAVAILABLE
    /// (rather than let the store fail half-way) until space returns.
    pub min_free_bytes: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_amount_fen: 1_000_000_000_000, // 10 billion yuan
            max_future_skew_ms: 5 * 60 * 1000,
            policy: Policy::default(),
            bases: BasisTable::default(),
            blacklist_log_retain: 100_000,
            checks_per_second: 1_000,
            callers: crate::limits::CallerLimits {
                requests_per_second: 5_000,
                max_streams: 256,
            },
            max_backlog: 100_000,
            min_free_bytes: 256 << 20,
        }
    }
}

/// The answer to a submission, renewal or release.
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

/// The answer to a listing or delisting.
#[derive(Debug, Clone)]
pub struct Listed {
    pub entry: Entry,
    pub extended: bool,
    pub replayed: bool,
}

/// The answer to an appeal being recorded or decided.
#[derive(Debug, Clone)]
pub struct AppealDecided {
    pub appeal: Appeal,
    pub entry: Option<Entry>,
}

/// What watchers are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The instruction changed.
    State,
    /// A freeze expires within the reminder period.
    RenewalReminder,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub record: InstructionRecord,
    pub kind: ChangeKind,
}

enum Command {
    Submit {
        agency: String,
        notice: Box<NewNotice>,
        reply: oneshot::Sender<Result<Submitted>>,
    },
    FollowUp {
        agency: String,
        follow_up: NewFollowUp,
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
    ListSubject {
        agency: String,
        listing: NewListing,
        reply: oneshot::Sender<Result<Listed>>,
    },
    DelistSubject {
        agency: String,
        subject: Subject,
        reason: String,
        reply: oneshot::Sender<Result<Listed>>,
    },
    RecordAppeal {
        body: String,
        request_id: String,
        subject: Subject,
        grounds: String,
        reply: oneshot::Sender<Result<AppealDecided>>,
    },
    DecideAppeal {
        body: String,
        appeal_id: String,
        upheld: bool,
        reason: String,
        reply: oneshot::Sender<Result<AppealDecided>>,
    },
    /// A blacklist check, for the record. Fire and forget: synced with the next batch.
    RecordCheck {
        record: CheckRecord,
    },
    /// Make everything committed durable (and so visible to audit streams).
    Sync,
    /// Fire every timer due by the hub's clock; the reply says how many fired.
    FireTimers {
        reply: oneshot::Sender<Result<usize>>,
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
    /// One message per committed batch: all its changes together, so that a watcher sees a
    /// batch whole (an answer and the next-level stops it caused).
    events: broadcast::Sender<Arc<[Change]>>,
    /// Per institution: the highest sequence that is durable, so streams never send what a
    /// crash could take back.
    watermarks: Arc<HashMap<String, watch::Sender<u64>>>,
    /// Woken when a commit scheduled a timer, so the timer task re-reads the earliest.
    timers_changed: Arc<Notify>,
    /// The last durable blacklist version, for the sync streams.
    blacklist_watermark: Arc<watch::Sender<u64>>,
    /// The last durable audit position, for audit streams.
    audit_watermark: Arc<watch::Sender<u64>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

/// Joins the writer thread after the last command has been synced.
pub struct WriterHandle {
    commands: mpsc::Sender<Command>,
    thread: JoinHandle<()>,
    poisoned: Arc<std::sync::atomic::AtomicBool>,
}

impl WriterHandle {
    /// Whether a sync failed (the hub stopped taking work and must restart).
    pub fn failed(&self) -> bool {
        self.poisoned.load(std::sync::atomic::Ordering::SeqCst)
    }

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
        Self::start_with_metrics(store, registry, config, clock, shutdown, Arc::default())
    }

    pub fn start_with_metrics(
        store: Arc<Store>,
        registry: Arc<Registry>,
        config: HubConfig,
        clock: SharedClock,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Hub>, WriterHandle)> {
        let open = store.open_per_institution()?;
        metrics.set_open(
            registry
                .institutions()
                .map(|i| (i.code.clone(), open.get(&i.code).copied().unwrap_or(0))),
        );
        let blacklist_in_force = store.counter(BLACKLIST_IN_FORCE)?;
        metrics
            .blacklist_in_force
            .store(blacklist_in_force, std::sync::atomic::Ordering::Relaxed);
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
        let timers_changed = Arc::new(Notify::new());
        let blacklist_version = store.blacklist_version()?;
        let blacklist_watermark = Arc::new(watch::Sender::new(blacklist_version));
        let audit_head = crate::audit::head(&store)?;
        let poisoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let audit_watermark = Arc::new(watch::Sender::new(audit_head.0));
        let writer = writer::Writer {
            store: store.clone(),
            registry: registry.clone(),
            clock: clock.clone(),
            config: config.clone(),
            next_seq,
            events: events.clone(),
            watermarks: watermarks.clone(),
            timers_changed: timers_changed.clone(),
            blacklist_version,
            blacklist_watermark: blacklist_watermark.clone(),
            audit_durable: audit_head.0,
            audit_head,
            audit_watermark: audit_watermark.clone(),
            metrics: metrics.clone(),
            poisoned: poisoned.clone(),
            shutdown: shutdown.clone(),
            open,
            blacklist_in_force,
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
            timers_changed,
            blacklist_watermark,
            audit_watermark,
            metrics,
            shutdown,
        });
        Ok((
            hub,
            WriterHandle {
                commands: tx,
                thread,
                poisoned,
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
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<[Change]>> {
        self.events.subscribe()
    }
    pub fn watermark(&self, institution: &str) -> Option<watch::Receiver<u64>> {
        self.watermarks.get(institution).map(|w| w.subscribe())
    }
    pub fn timers_changed(&self) -> &Arc<Notify> {
        &self.timers_changed
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

    /// A renewal or release of one of the agency's instructions.
    pub async fn follow_up(&self, agency: &str, follow_up: NewFollowUp) -> Result<Submitted> {
        self.call(|reply| Command::FollowUp {
            agency: agency.to_owned(),
            follow_up,
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

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn audit_watermark(&self) -> watch::Receiver<u64> {
        self.audit_watermark.subscribe()
    }

    pub fn blacklist_watermark(&self) -> watch::Receiver<u64> {
        self.blacklist_watermark.subscribe()
    }

    pub async fn list_subject(&self, agency: &str, listing: NewListing) -> Result<Listed> {
        self.call(|reply| Command::ListSubject {
            agency: agency.to_owned(),
            listing,
            reply,
        })
        .await
    }

    pub async fn delist_subject(
        &self,
        agency: &str,
        subject: Subject,
        reason: String,
    ) -> Result<Listed> {
        self.call(|reply| Command::DelistSubject {
            agency: agency.to_owned(),
            subject,
            reason,
            reply,
        })
        .await
    }

    pub async fn record_appeal(
        &self,
        body: &str,
        request_id: String,
        subject: Subject,
        grounds: String,
    ) -> Result<AppealDecided> {
        self.call(|reply| Command::RecordAppeal {
            body: body.to_owned(),
            request_id,
            subject,
            grounds,
            reply,
        })
        .await
    }

    pub async fn decide_appeal(
        &self,
        body: &str,
        appeal_id: String,
        upheld: bool,
        reason: String,
    ) -> Result<AppealDecided> {
        self.call(|reply| Command::DecideAppeal {
            body: body.to_owned(),
            appeal_id,
            upheld,
            reason,
            reply,
        })
        .await
    }

    /// Records a blacklist check for audit, without waiting.
    pub fn record_check(&self, record: CheckRecord) {
        if self
            .commands
            .try_send(Command::RecordCheck { record })
            .is_err()
        {
            tracing::warn!("check record dropped: the writer's queue is full");
        }
    }

    /// Fires the timers that are due now; returns how many fired.
    pub async fn fire_timers(&self) -> Result<usize> {
        self.call(|reply| Command::FireTimers { reply }).await
    }

    /// Notes that an instruction went out on its institution's stream. Fire and forget: it
    /// becomes durable with the next batch that is synced.
    /// Asks the writer to sync what it committed without a sync (check and delivery
    /// records), so that an audit stream opened now sees the chain up to its head.
    pub async fn request_sync(&self) {
        let _ = self.commands.send(Command::Sync).await;
    }

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

#[cfg(test)]
mod tests;
