//! The writer thread: applies commands in batches, stages their writes, commits each batch
//! atomically and syncs it once, then replies and publishes.
//!
//! Within a batch every read goes through the staged writes ([`Batch::read`]), so a command
//! sees the effects of the commands before it even though nothing is committed yet.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use super::{
    Acked, AppealDecided, Change, ChangeKind, Command, HubConfig, Listed, MAX_BATCH, Submitted,
};
use crate::audit::{AuditItem, AuditRecord};
use crate::clock::SharedClock;
use crate::domain::ids::Timestamp;
use crate::domain::instruction::{self, Applied, Event, InstructionRecord};
use crate::error::{Error, Result};
use crate::participants::Registry;
use crate::store::{DeliveryKind, OutboxEntry, Store, TimerKind, TreeId, Writes, decode, keys};

/// Timers fired per command, so one late wake-up cannot make a giant batch (nor an audit
/// record large enough for sled to store it as a separate blob file).
pub(super) const TIMERS_PER_FIRE: usize = 256;

pub(super) struct Writer {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub clock: SharedClock,
    pub config: HubConfig,
    /// The last sequence given to each institution, as committed.
    pub next_seq: HashMap<String, u64>,
    pub events: broadcast::Sender<Arc<[Change]>>,
    pub watermarks: Arc<HashMap<String, watch::Sender<u64>>>,
    pub timers_changed: Arc<Notify>,
    /// The last blacklist version committed, and its watchers (the sync streams).
    pub blacklist_version: u64,
    pub blacklist_watermark: Arc<watch::Sender<u64>>,
    /// The audit chain's last committed (position, hash), and its watchers.
    pub audit_head: (u64, String),
    /// The last audit position known to be on stable storage: audit streams get no further,
    /// so a record a crash could take back (a check's, committed without a sync) is never
    /// streamed, and the chain an auditor holds cannot fork.
    pub audit_durable: u64,
    pub audit_watermark: Arc<watch::Sender<u64>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Set when a sync failed: nothing more is committed, and the hub shuts down.
    pub poisoned: Arc<std::sync::atomic::AtomicBool>,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Instructions awaiting an answer, per institution, as committed.
    pub open: HashMap<String, i64>,
    /// Blacklist entries in force, as committed (kept in the `meta` tree).
    pub blacklist_in_force: i64,
}

/// A reply held back until the batch is durable.
enum Pending {
    Submit(oneshot::Sender<Result<Submitted>>, Box<Result<Submitted>>),
    Ack(oneshot::Sender<Result<Acked>>, Box<Result<Acked>>),
    Fired(oneshot::Sender<Result<usize>>, Result<usize>),
    Listing(oneshot::Sender<Result<Listed>>, Box<Result<Listed>>),
    Appeal(
        oneshot::Sender<Result<AppealDecided>>,
        Box<Result<AppealDecided>>,
    ),
}

/// One batch of commands, staged for one commit and one sync.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) writes: Writes,
    /// Sequences given out in this batch, on top of `Writer::next_seq`.
    pub(super) seqs: HashMap<String, u64>,
    /// `case_accounts` keys staged in this batch (the index is read by prefix).
    pub(super) case_keys: Vec<Vec<u8>>,
    /// Changes to publish after the sync.
    pub(super) events: Vec<Change>,
    /// Whether a caller waits on these writes (then they must be synced before replying).
    pub(super) must_sync: bool,
    pub(super) timers_added: bool,
    /// The blacklist version after this batch's changes, if it made any.
    pub(super) blacklist_version: Option<u64>,
    /// What the current command changed, for its audit record.
    pub(super) audit_items: Vec<AuditItem>,
    /// Changes of the open-instruction counts and of the blacklist count in this batch.
    pub(super) open_delta: HashMap<String, i64>,
    pub(super) blacklist_delta: i64,
    /// (action, state) entered, for the transition counters.
    pub(super) entered: Vec<(String, String)>,
    /// The audit chain's head after this batch's records, if it wrote any.
    pub(super) audit_head: Option<(u64, String)>,
}

/// Where a batch stood before a command, to undo that command's staging if it fails.
pub(super) struct Mark {
    writes: usize,
    seqs: HashMap<String, u64>,
    case_keys: usize,
    events: usize,
    must_sync: bool,
    timers_added: bool,
    blacklist_version: Option<u64>,
    audit_items: usize,
    audit_head: Option<(u64, String)>,
    open_delta: HashMap<String, i64>,
    blacklist_delta: i64,
    entered: usize,
}

impl Batch {
    pub(super) fn mark(&self) -> Mark {
        Mark {
            writes: self.writes.len(),
            seqs: self.seqs.clone(),
            case_keys: self.case_keys.len(),
            events: self.events.len(),
            must_sync: self.must_sync,
            timers_added: self.timers_added,
            blacklist_version: self.blacklist_version,
            audit_items: self.audit_items.len(),
            audit_head: self.audit_head.clone(),
            open_delta: self.open_delta.clone(),
            blacklist_delta: self.blacklist_delta,
            entered: self.entered.len(),
        }
    }

    pub(super) fn rollback(&mut self, mark: Mark) {
        self.writes.truncate(mark.writes);
        self.seqs = mark.seqs;
        self.case_keys.truncate(mark.case_keys);
        self.events.truncate(mark.events);
        self.must_sync = mark.must_sync;
        self.timers_added = mark.timers_added;
        self.blacklist_version = mark.blacklist_version;
        self.audit_items.truncate(mark.audit_items);
        self.audit_head = mark.audit_head;
        self.open_delta = mark.open_delta;
        self.blacklist_delta = mark.blacklist_delta;
        self.entered.truncate(mark.entered);
    }

    /// Reads through the staged writes to the store.
    pub(super) fn read<V: DeserializeOwned>(
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

    pub(super) fn put_instruction(&mut self, rec: &InstructionRecord) {
        self.audit_items.push(AuditItem::new(
            "instruction",
            rec.instruction_id.clone(),
            format!(
                "{:?} {:?} at {} for {} fen, held {} fen (v{})",
                rec.action,
                rec.state,
                rec.institution(),
                rec.account.amount.get(),
                rec.held(),
                rec.version
            ),
        ));
        self.writes
            .put(TreeId::Instructions, rec.instruction_id.as_bytes(), rec);
        self.events.push(Change {
            record: rec.clone(),
            kind: ChangeKind::State,
        });
    }

    pub(super) fn timer(
        &mut self,
        due: Timestamp,
        kind: TimerKind,
        id: &str,
        expected: Option<Timestamp>,
    ) {
        let value = expected
            .map(|t| t.millis().to_be_bytes().to_vec())
            .unwrap_or_default();
        self.writes.put_raw(
            TreeId::Timers,
            keys::timer(due.millis(), kind as u8, id),
            value,
        );
        self.timers_added = true;
    }
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
                        let actor = format!("police:{agency}");
                        let result = self.isolated(&mut batch, &actor, "submit_notice", |w, b| {
                            w.submit(&agency, &notice, b)
                        });
                        pending.push(Pending::Submit(reply, Box::new(result)));
                    }
                    Command::FollowUp {
                        agency,
                        follow_up,
                        reply,
                    } => {
                        let actor = format!("police:{agency}");
                        let action = match follow_up.kind {
                            crate::domain::notice::FollowUpKind::Renew { .. } => "renew_freeze",
                            crate::domain::notice::FollowUpKind::Release { .. } => "release",
                        };
                        let result = self.isolated(&mut batch, &actor, action, |w, b| {
                            w.follow_up(&agency, &follow_up, b)
                        });
                        pending.push(Pending::Submit(reply, Box::new(result)));
                    }
                    Command::Acknowledge {
                        institution,
                        instruction_id,
                        outcome,
                        reply,
                    } => {
                        let actor = format!("bank:{institution}");
                        let result = self.isolated(&mut batch, &actor, "acknowledge", |w, b| {
                            w.acknowledge(&institution, &instruction_id, outcome, b)
                        });
                        pending.push(Pending::Ack(reply, Box::new(result)));
                    }
                    Command::Delivered { instruction_id } => {
                        if let Err(e) = self.isolated(&mut batch, "hub", "deliver", |w, b| {
                            w.delivered(&instruction_id, b)
                        }) {
                            tracing::warn!(%instruction_id, error = %e, "could not record delivery");
                        }
                    }
                    Command::FireTimers { reply } => {
                        let result = self
                            .isolated(&mut batch, "hub", "fire_timers", |w, b| w.fire_timers(b));
                        pending.push(Pending::Fired(reply, result));
                    }
                    Command::ListSubject {
                        agency,
                        listing,
                        reply,
                    } => {
                        let actor = format!("police:{agency}");
                        let result = self.isolated(&mut batch, &actor, "list_subject", |w, b| {
                            w.list_subject(&agency, &listing, b)
                        });
                        pending.push(Pending::Listing(reply, Box::new(result)));
                    }
                    Command::DelistSubject {
                        agency,
                        subject,
                        reason,
                        reply,
                    } => {
                        let actor = format!("police:{agency}");
                        let result = self.isolated(&mut batch, &actor, "delist_subject", |w, b| {
                            w.delist_subject(&agency, &subject, &reason, b)
                        });
                        pending.push(Pending::Listing(reply, Box::new(result)));
                    }
                    Command::RecordAppeal {
                        body,
                        request_id,
                        subject,
                        grounds,
                        reply,
                    } => {
                        let actor = format!("oversight:{body}");
                        let result = self.isolated(&mut batch, &actor, "record_appeal", |w, b| {
                            w.record_appeal(&body, &request_id, &subject, &grounds, b)
                        });
                        pending.push(Pending::Appeal(reply, Box::new(result)));
                    }
                    Command::DecideAppeal {
                        body,
                        appeal_id,
                        upheld,
                        reason,
                        reply,
                    } => {
                        let actor = format!("oversight:{body}");
                        let result = self.isolated(&mut batch, &actor, "decide_appeal", |w, b| {
                            w.decide_appeal(&body, &appeal_id, upheld, &reason, b)
                        });
                        pending.push(Pending::Appeal(reply, Box::new(result)));
                    }
                    Command::RecordCheck { record } => {
                        let actor = format!("bank:{}", record.institution);
                        let _ = self.isolated(&mut batch, &actor, "check_subject", |w, b| {
                            w.record_check(&record, b)
                        });
                    }
                    Command::Sync => batch.must_sync = true,
                    Command::Stop => stop = true,
                }
            }
            let applied_us = started.elapsed().as_micros() as u64;
            // Audit records reach audit streams only once durable. A batch whose audit records
            // nobody waits for (blacklist checks, deliveries) is synced with the next batch, or
            // at once when no other command is waiting: an idle writer keeps sled's dirty data
            // small, which measured faster (lower latency and more notices a second) than
            // leaving it for the next awaited sync.
            let must_sync = batch.must_sync || (batch.audit_head.is_some() && rx.is_empty());
            // Nothing is committed once a sync has failed: the store's state on disk is then
            // unknown, and only a restart (recovery from disk) can say what survived.
            let committed = if self.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
                Err(Error::Store(
                    "an earlier sync failed; the hub must restart".into(),
                ))
            } else {
                self.room().and_then(|()| self.store.commit(&batch.writes))
            };
            if committed.is_ok() {
                // Applied in the store: these sequences are taken whatever the sync does.
                self.next_seq.extend(std::mem::take(&mut batch.seqs));
                if let Some(v) = batch.blacklist_version {
                    self.blacklist_version = v;
                }
                if let Some(head) = batch.audit_head.take() {
                    self.audit_head = head;
                }
                for (institution, d) in batch.open_delta.drain() {
                    *self.open.entry(institution).or_default() += d;
                }
                self.blacklist_in_force += batch.blacklist_delta;
                for (action, state) in batch.entered.drain(..) {
                    self.metrics.transition(&action, &state);
                }
            }
            let done = match &committed {
                Ok(()) if must_sync => {
                    let t = std::time::Instant::now();
                    let synced = self.store.sync();
                    self.metrics.store_sync.observe(t.elapsed());
                    if synced.is_ok() {
                        self.audit_durable = self.audit_head.0;
                    }
                    if synced.is_err() {
                        // Committed but maybe not on disk: stop taking work and shut the hub
                        // down, so that recovery from disk decides what survived.
                        self.poisoned
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                        self.shutdown.cancel();
                    }
                    synced
                }
                Ok(()) => Ok(()),
                // The commit failed: a refusal in this batch may rest on a write that never
                // happened, so every answer becomes UNAVAILABLE.
                Err(e) => Err(unavailable(e)),
            };
            tracing::debug!(
                commands = pending.len(),
                applied_us,
                committed_us = started.elapsed().as_micros() as u64 - applied_us,
                "batch committed"
            );
            if let Err(e) = &done {
                tracing::error!(error = %e, "commit or sync failed; answering the batch with UNAVAILABLE");
            }
            // Wake streams and watchers before answering, so that a caller who has its answer
            // finds its change everywhere (a bank that subscribes next sees it). Only what is
            // durable is published.
            if done.is_ok() {
                self.publish(batch.events);
                if batch.timers_added {
                    self.timers_changed.notify_one();
                }
            }
            let commit_failed = committed.as_ref().err();
            for p in pending {
                match p {
                    Pending::Submit(reply, result) => {
                        let _ = reply.send(answer(after_sync(*result, &done), commit_failed));
                    }
                    Pending::Ack(reply, result) => {
                        let _ = reply.send(answer(after_sync(*result, &done), commit_failed));
                    }
                    Pending::Fired(reply, result) => {
                        let _ = reply.send(answer(after_sync(result, &done), commit_failed));
                    }
                    Pending::Listing(reply, result) => {
                        let _ = reply.send(answer(after_sync(*result, &done), commit_failed));
                    }
                    Pending::Appeal(reply, result) => {
                        let _ = reply.send(answer(after_sync(*result, &done), commit_failed));
                    }
                }
            }
            if stop {
                break;
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
    }

    /// Whether the disk has room for this batch: below the reserve nothing is committed, so
    /// the store never meets a full disk half-way through a write; it resumes by itself once
    /// space returns (this is asked again for every batch).
    fn room(&mut self) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let checked = self.store.check_room(self.config.min_free_bytes);
        let refused = checked.is_err();
        if let Ok(Some(free)) = checked {
            self.metrics
                .store_free_bytes
                .store(i64::try_from(free).unwrap_or(i64::MAX), Relaxed);
        }
        if refused != (self.metrics.writes_refused.load(Relaxed) == 1) {
            self.metrics
                .writes_refused
                .store(i64::from(refused), Relaxed);
            match &checked {
                Err(e) => {
                    tracing::error!(error = %e, "refusing writes: free disk space is below the reserve")
                }
                Ok(_) => {
                    tracing::warn!("free disk space is back above the reserve: taking writes again")
                }
            }
        }
        checked.map(|_| ())
    }

    /// Runs one command against the batch and audits it: a command that changed something
    /// gets a record of what changed; a refused one gets a record of the refusal, and nothing
    /// it staged remains.
    fn isolated<T>(
        &mut self,
        batch: &mut Batch,
        actor: &str,
        action: &str,
        f: impl FnOnce(&mut Self, &mut Batch) -> Result<T>,
    ) -> Result<T> {
        let mark = batch.mark();
        let mark_items = mark.audit_items;
        let result = f(self, batch);
        match &result {
            Err(e) => {
                batch.rollback(mark);
                if !matches!(e, Error::Store(_) | Error::ShuttingDown) {
                    self.audit(batch, actor, action, &format!("refused: {e}"), Vec::new());
                }
            }
            Ok(_) => {
                let items = batch.audit_items.split_off(mark_items);
                if !items.is_empty() {
                    self.audit(batch, actor, action, "ok", items);
                }
            }
        }
        result
    }

    /// Stages the next audit record, chained to the one before (staged or committed).
    fn audit(
        &self,
        batch: &mut Batch,
        actor: &str,
        action: &str,
        outcome: &str,
        items: Vec<AuditItem>,
    ) {
        let (seq, hash) = batch
            .audit_head
            .clone()
            .unwrap_or_else(|| self.audit_head.clone());
        let record = AuditRecord::seal(
            (seq, &hash),
            self.clock.now(),
            actor,
            action,
            outcome,
            items,
        );
        batch
            .writes
            .put(TreeId::Audit, record.seq.to_be_bytes().to_vec(), &record);
        batch.audit_head = Some((record.seq, record.hash));
    }

    fn publish(&self, events: Vec<Change>) {
        for (institution, seq) in &self.next_seq {
            if let Some(w) = self.watermarks.get(institution) {
                w.send_if_modified(|cur| {
                    let changed = *cur != *seq;
                    *cur = *seq;
                    changed
                });
            }
        }
        if !events.is_empty() {
            let _ = self.events.send(events.into());
        }
        let v = self.blacklist_version;
        self.blacklist_watermark
            .send_if_modified(|cur| std::mem::replace(cur, v) != v);
        self.metrics
            .set_open(self.open.iter().map(|(k, v)| (k.clone(), *v)));
        self.metrics.blacklist_in_force.store(
            self.blacklist_in_force,
            std::sync::atomic::Ordering::Relaxed,
        );
        let a = self.audit_durable;
        self.audit_watermark
            .send_if_modified(|cur| std::mem::replace(cur, a) != a);
    }

    pub(super) fn instruction(&self, batch: &Batch, id: &str) -> Result<Option<InstructionRecord>> {
        batch.read(&self.store, TreeId::Instructions, id.as_bytes())
    }

    pub(super) fn existing(&self, batch: &Batch, id: &str) -> Result<InstructionRecord> {
        self.instruction(batch, id)?
            .ok_or_else(|| Error::NotFound(format!("instruction_id: no instruction {id:?}")))
    }

    /// Applies `event` to `rec` and stages the result; returns the record after it.
    pub(super) fn transition(
        &self,
        batch: &mut Batch,
        rec: &InstructionRecord,
        event: &Event,
    ) -> Result<Option<InstructionRecord>> {
        match instruction::apply(rec, event, self.clock.now(), &self.config.policy)? {
            Applied::Changed(next) => {
                batch.put_instruction(&next);
                if next.state != rec.state {
                    batch
                        .entered
                        .push((format!("{:?}", next.action), format!("{:?}", next.state)));
                }
                if rec.state.awaiting_answer() && !next.state.awaiting_answer() {
                    *batch
                        .open_delta
                        .entry(next.institution().to_owned())
                        .or_default() -= 1;
                }
                Ok(Some(*next))
            }
            Applied::Unchanged => Ok(None),
        }
    }

    pub(super) fn next_seq(&self, batch: &mut Batch, institution: &str) -> Result<u64> {
        let last = match batch.seqs.get(institution) {
            Some(s) => *s,
            None => *self.next_seq.get(institution).ok_or_else(|| {
                Error::invalid(
                    "institution_code",
                    format!("{institution} is not registered"),
                )
            })?,
        };
        batch.seqs.insert(institution.to_owned(), last + 1);
        Ok(last + 1)
    }

    /// Stages a new instruction: the record, its delivery entries, its case index entry and
    /// its answer-deadline timer.
    pub(super) fn stage_new(
        &self,
        batch: &mut Batch,
        mut rec: InstructionRecord,
    ) -> Result<InstructionRecord> {
        let institution = rec.institution().to_owned();
        rec.sequence = self.next_seq(batch, &institution)?;
        let id = rec.instruction_id.clone();
        let entry = OutboxEntry {
            instruction_id: id.clone(),
            kind: DeliveryKind::Instruction,
        };
        batch.writes.put(
            TreeId::Outbox,
            keys::delivery(&institution, rec.sequence),
            &entry,
        );
        batch.writes.put_raw(
            TreeId::Unacked,
            keys::unacked(&institution, rec.action.priority(), rec.sequence),
            id.as_bytes(),
        );
        let case_key = keys::case_account(
            &rec.police_agency,
            &rec.case_reference,
            &institution,
            rec.account.account_number.as_str(),
            &id,
        );
        batch
            .writes
            .put_raw(TreeId::CaseAccounts, case_key.clone(), Vec::new());
        batch.case_keys.push(case_key);
        batch.timer(rec.answer_due_at, TimerKind::AnswerDue, &id, None);
        batch.put_instruction(&rec);
        batch
            .entered
            .push((format!("{:?}", rec.action), "Pending".to_owned()));
        *batch.open_delta.entry(institution.clone()).or_default() += 1;
        Ok(rec)
    }

    /// An entry in the institution's delivery log that needs no acknowledgement.
    pub(super) fn notify_institution(
        &self,
        batch: &mut Batch,
        rec: &InstructionRecord,
        kind: DeliveryKind,
    ) -> Result<()> {
        let seq = self.next_seq(batch, rec.institution())?;
        let entry = OutboxEntry {
            instruction_id: rec.instruction_id.clone(),
            kind,
        };
        batch.writes.put(
            TreeId::Outbox,
            keys::delivery(rec.institution(), seq),
            &entry,
        );
        Ok(())
    }

    /// The instructions on one account within a case, including those staged in this batch.
    pub(super) fn account_records(
        &self,
        batch: &Batch,
        agency: &str,
        case: &str,
        institution: &str,
        account: &str,
    ) -> Result<Vec<InstructionRecord>> {
        let prefix = keys::case_account_prefix(agency, case, institution, account);
        let mut ids = self
            .store
            .account_instructions(agency, case, institution, account)?;
        for key in batch.case_keys.iter().filter(|k| k.starts_with(&prefix)) {
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.iter().map(|id| self.existing(batch, id)).collect()
    }
}

/// When the commit failed, every answer of the batch is UNAVAILABLE (a refusal may rest on a
/// staged write that never happened).
fn answer<T>(r: Result<T>, commit_failed: Option<&Error>) -> Result<T> {
    match commit_failed {
        Some(e) => Err(unavailable(e)),
        None => r,
    }
}

/// The answer for every command of a batch that was not committed.
fn unavailable(e: &Error) -> Error {
    match e {
        Error::Unavailable(why) => Error::Unavailable(why.clone()),
        _ => Error::Store("the batch could not be committed".into()),
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
