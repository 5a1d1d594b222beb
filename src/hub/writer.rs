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
use crate::domain::funds::{self, FundsContext};
use crate::domain::ids::{AccountNumber, Timestamp};
use crate::domain::instruction::{
    self, Applied, Event, HopResult, InstructionRecord, Outcome, State,
};
use crate::domain::notice::{
    AccountKind, Action, FollowUpKind, NewFollowUp, NewNotice, NoticeRecord, RequestRecord,
    SuspectAccount,
};
use crate::error::{Error, Result};
use crate::participants::{InstitutionKind, Registry};
use crate::store::{DeliveryKind, OutboxEntry, Store, TimerKind, TreeId, Writes, decode, keys};

/// Timers fired per command, so one late wake-up cannot make a giant batch.
const TIMERS_PER_FIRE: usize = 1024;

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
    pub audit_watermark: Arc<watch::Sender<u64>>,
    pub metrics: Arc<crate::metrics::Metrics>,
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
    seqs: HashMap<String, u64>,
    /// `case_accounts` keys staged in this batch (the index is read by prefix).
    case_keys: Vec<Vec<u8>>,
    /// Changes to publish after the sync.
    events: Vec<Change>,
    /// Whether a caller waits on these writes (then they must be synced before replying).
    pub(super) must_sync: bool,
    timers_added: bool,
    /// The blacklist version after this batch's changes, if it made any.
    pub(super) blacklist_version: Option<u64>,
    /// What the current command changed, for its audit record.
    pub(super) audit_items: Vec<AuditItem>,
    /// Changes of the open-instruction counts and of the blacklist count in this batch.
    open_delta: HashMap<String, i64>,
    pub(super) blacklist_delta: i64,
    /// (action, state) entered, for the transition counters.
    entered: Vec<(String, String)>,
    /// The audit chain's head after this batch's records, if it wrote any.
    audit_head: Option<(u64, String)>,
}

/// Where a batch stood before a command, to undo that command's staging if it fails.
struct Mark {
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
    fn mark(&self) -> Mark {
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

    fn rollback(&mut self, mark: Mark) {
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

    fn put_instruction(&mut self, rec: &InstructionRecord) {
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
                    Command::Stop => stop = true,
                }
            }
            let applied_us = started.elapsed().as_micros() as u64;
            // Delivery marks alone are not worth an fsync: they ride with the next one.
            let committed = self.store.commit(&batch.writes);
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
            let done = committed.and_then(|()| {
                if batch.must_sync {
                    let t = std::time::Instant::now();
                    let synced = self.store.sync();
                    self.metrics.store_sync.observe(t.elapsed());
                    synced
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
            // Wake streams and watchers before answering, so that a caller who has its answer
            // finds its change everywhere (a bank that subscribes next sees it).
            if done.is_ok() {
                self.publish(batch.events);
                if batch.timers_added {
                    self.timers_changed.notify_one();
                }
            }
            for p in pending {
                match p {
                    Pending::Submit(reply, result) => {
                        let _ = reply.send(after_sync(*result, &done));
                    }
                    Pending::Ack(reply, result) => {
                        let _ = reply.send(after_sync(*result, &done));
                    }
                    Pending::Fired(reply, result) => {
                        let _ = reply.send(after_sync(result, &done));
                    }
                    Pending::Listing(reply, result) => {
                        let _ = reply.send(after_sync(*result, &done));
                    }
                    Pending::Appeal(reply, result) => {
                        let _ = reply.send(after_sync(*result, &done));
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

    /// Runs one command against the batch; if it fails, nothing it staged remains.
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
        let a = self.audit_head.0;
        self.audit_watermark
            .send_if_modified(|cur| std::mem::replace(cur, a) != a);
    }

    fn instruction(&self, batch: &Batch, id: &str) -> Result<Option<InstructionRecord>> {
        batch.read(&self.store, TreeId::Instructions, id.as_bytes())
    }

    fn existing(&self, batch: &Batch, id: &str) -> Result<InstructionRecord> {
        self.instruction(batch, id)?
            .ok_or_else(|| Error::NotFound(format!("instruction_id: no instruction {id:?}")))
    }

    /// Applies `event` to `rec` and stages the result; returns the record after it.
    fn transition(
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

    fn next_seq(&self, batch: &mut Batch, institution: &str) -> Result<u64> {
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
    fn stage_new(
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
    fn notify_institution(
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
    fn account_records(
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

    /// Replays of an idempotent request, or a refusal when the request id was used for
    /// something else.
    fn replay(
        &self,
        batch: &mut Batch,
        agency: &str,
        request_id: &str,
        hash: &str,
    ) -> Result<Option<Submitted>> {
        let key = keys::request(agency, request_id);
        let Some(previous) = batch.read::<RequestRecord>(&self.store, TreeId::Requests, &key)?
        else {
            return Ok(None);
        };
        if previous.payload_hash != hash {
            return Err(Error::AlreadyExists(format!(
                "request_id: {request_id:?} was already used by agency {agency} for notice {} with a different payload; \
                 a request_id names one request only",
                previous.notice_id
            )));
        }
        let notice: NoticeRecord = batch
            .read(&self.store, TreeId::Notices, previous.notice_id.as_bytes())?
            .ok_or_else(|| Error::Store(format!("notice {} is missing", previous.notice_id)))?;
        let instructions = notice
            .instruction_ids
            .iter()
            .map(|id| self.existing(batch, id))
            .collect::<Result<Vec<_>>>()?;
        // The original may be in this very batch: answer once it is durable.
        batch.must_sync = true;
        Ok(Some(Submitted {
            notice,
            instructions,
            replayed: true,
        }))
    }

    fn stage_notice(
        &self,
        batch: &mut Batch,
        agency: &str,
        request_id: &str,
        notice: &NoticeRecord,
    ) {
        batch
            .writes
            .put(TreeId::Notices, notice.notice_id.as_bytes(), notice);
        batch.audit_items.push(AuditItem::new(
            "notice",
            notice.notice_id.clone(),
            format!(
                "{:?} accepted for case {} (request {}), {} instruction(s)",
                notice.action,
                notice.case_reference,
                notice.request_id,
                notice.instruction_ids.len()
            ),
        ));
        batch.writes.put(
            TreeId::Requests,
            keys::request(agency, request_id),
            &RequestRecord {
                notice_id: notice.notice_id.clone(),
                payload_hash: notice.payload_hash.clone(),
            },
        );
        batch.must_sync = true;
    }

    fn new_record(
        &self,
        notice: &NoticeRecord,
        account: SuspectAccount,
        now: Timestamp,
    ) -> Result<InstructionRecord> {
        Ok(InstructionRecord {
            instruction_id: keys::instruction_id(self.store.next_id()?),
            notice_id: notice.notice_id.clone(),
            case_reference: notice.case_reference.clone(),
            police_agency: notice.police_agency.clone(),
            action: notice.action,
            account,
            victim: notice.victim.clone(),
            state: State::Pending,
            sequence: 0,
            created_at: now,
            answer_due_at: self.config.policy.answer_deadline(notice.action, now),
            delivered_at: None,
            ack: None,
            updated_at: now,
            version: 1,
            references: None,
            parent: None,
            depth: 1,
            follow_depth: notice.follow_depth,
            freeze: notice.freeze.clone(),
            case_filing: notice.case_filing.clone(),
            effective_until: None,
            overdue_at: None,
            hops: Vec::new(),
            renew_until: None,
            pending_follow_up: None,
        })
    }

    fn submit(&mut self, agency: &str, new: &NewNotice, batch: &mut Batch) -> Result<Submitted> {
        let hash = new.payload_hash();
        if let Some(replayed) = self.replay(batch, agency, &new.request_id, &hash)? {
            return Ok(replayed);
        }
        let now = self.clock.now();
        let policy = &self.config.policy;
        for (i, account) in new.accounts.iter().enumerate() {
            let on_account = self.account_records(
                batch,
                agency,
                &new.case_reference,
                account.institution_code.as_str(),
                account.account_number.as_str(),
            )?;
            match new.action {
                Action::StopPayment => {
                    let stops: Vec<&str> = on_account
                        .iter()
                        .filter(|r| r.action == Action::StopPayment && !failed(r.state))
                        .map(|r| r.instruction_id.as_str())
                        .collect();
                    if stops.len() >= policy.max_stops_per_account {
                        return Err(Error::FailedPrecondition(format!(
                            "suspect_accounts[{i}]: two-stop limit: account {} at {} already had {} stop-payments in case {} ({}); \
                             no further stop is allowed: freeze the account instead (ACTION_FREEZE, which needs a filed case)",
                            account.account_number.masked(),
                            account.institution_code,
                            stops.len(),
                            new.case_reference,
                            stops.join(", ")
                        )));
                    }
                }
                Action::Freeze => {
                    if let Some(stop_id) = &account.follows {
                        let ok = on_account.iter().any(|r| {
                            r.instruction_id == *stop_id && r.action == Action::StopPayment
                        });
                        if !ok {
                            return Err(Error::invalid(
                                format!("suspect_accounts[{i}].follows_instruction_id"),
                                format!(
                                    "{stop_id} is not a stop-payment of this agency on this account in case {}",
                                    new.case_reference
                                ),
                            ));
                        }
                    }
                }
                Action::RenewFreeze | Action::ReleaseStop | Action::ReleaseFreeze => {
                    return Err(Error::invalid(
                        "action",
                        "renewals and releases have their own RPCs",
                    ));
                }
            }
        }
        let mut notice = NoticeRecord {
            notice_id: keys::notice_id(self.store.next_id()?),
            request_id: new.request_id.clone(),
            case_reference: new.case_reference.clone(),
            police_agency: agency.to_owned(),
            action: new.action,
            victim: new.victim.clone(),
            instruction_ids: Vec::new(),
            created_at: now,
            payload_hash: hash,
            case_filing: new.case_filing.clone(),
            freeze: new.freeze.clone(),
            follow_depth: new.follow_depth,
        };
        let mut instructions = Vec::with_capacity(new.accounts.len());
        for account in &new.accounts {
            let mut rec = self.new_record(&notice, account.clone(), now)?;
            rec.references = account.follows.clone();
            instructions.push(self.stage_new(batch, rec)?);
        }
        notice.instruction_ids = instructions
            .iter()
            .map(|i| i.instruction_id.clone())
            .collect();
        self.stage_notice(batch, agency, &new.request_id, &notice);
        tracing::info!(notice_id = %notice.notice_id, %agency, action = ?new.action, instructions = instructions.len(), "notice accepted");
        Ok(Submitted {
            notice,
            instructions,
            replayed: false,
        })
    }

    fn follow_up(
        &mut self,
        agency: &str,
        new: &NewFollowUp,
        batch: &mut Batch,
    ) -> Result<Submitted> {
        let hash = new.payload_hash();
        if let Some(replayed) = self.replay(batch, agency, &new.request_id, &hash)? {
            return Ok(replayed);
        }
        let now = self.clock.now();
        let target = self.existing(batch, &new.target)?;
        if target.police_agency != agency {
            return Err(Error::PermissionDenied(format!(
                "instruction {} belongs to another agency; {agency} may act only on its own",
                target.instruction_id
            )));
        }
        let (action, renew_until) = match &new.kind {
            FollowUpKind::Renew { until } => (
                Action::RenewFreeze,
                Some(instruction::check_renewal(
                    &target,
                    *until,
                    now,
                    &self.config.policy,
                )?),
            ),
            FollowUpKind::Release { .. } => {
                instruction::check_release(&target)?;
                let action = match target.action {
                    Action::Freeze => Action::ReleaseFreeze,
                    Action::StopPayment
                    | Action::RenewFreeze
                    | Action::ReleaseStop
                    | Action::ReleaseFreeze => Action::ReleaseStop,
                };
                (action, None)
            }
        };
        let mut notice = NoticeRecord {
            notice_id: keys::notice_id(self.store.next_id()?),
            request_id: new.request_id.clone(),
            case_reference: target.case_reference.clone(),
            police_agency: agency.to_owned(),
            action,
            victim: target.victim.clone(),
            instruction_ids: Vec::new(),
            created_at: now,
            payload_hash: hash,
            case_filing: target.case_filing.clone(),
            freeze: target.freeze.clone(),
            follow_depth: 0,
        };
        let mut rec = self.new_record(&notice, target.account.clone(), now)?;
        rec.references = Some(target.instruction_id.clone());
        rec.renew_until = renew_until;
        let rec = self.stage_new(batch, rec)?;
        self.transition(
            batch,
            &target,
            &Event::FollowUpOpened(rec.instruction_id.clone()),
        )?;
        notice.instruction_ids = vec![rec.instruction_id.clone()];
        self.stage_notice(batch, agency, &new.request_id, &notice);
        tracing::info!(notice_id = %notice.notice_id, %agency, ?action, target = %target.instruction_id, "follow-up accepted");
        Ok(Submitted {
            notice,
            instructions: vec![rec],
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
        let rec = self.existing(batch, instruction_id)?;
        if rec.institution() != institution {
            return Err(Error::PermissionDenied(format!(
                "instruction {instruction_id} is addressed to another institution; {institution} may answer only its own"
            )));
        }
        // A duplicate is answered only once its original is durable: it waits for this batch's sync.
        batch.must_sync = true;
        let Some(next) = self.transition(batch, &rec, &Event::Acknowledged(outcome))? else {
            return Ok(Acked {
                instruction: rec,
                duplicate: true,
            });
        };
        batch.writes.remove(
            TreeId::Unacked,
            keys::unacked(institution, next.action.priority(), next.sequence),
        );
        if let Some(until) = next.effective_until {
            batch.timer(until, TimerKind::TermEnd, instruction_id, Some(until));
            self.schedule_reminder(batch, &next, until);
        }
        self.close_follow_up(batch, &next)?;
        let next = self.follow_funds(batch, next)?;
        tracing::info!(%instruction_id, %institution, state = ?next.state, late_ms = next.ack.as_ref().map_or(0, |a| a.late_by_ms), "instruction answered");
        Ok(Acked {
            instruction: next,
            duplicate: false,
        })
    }

    fn schedule_reminder(&self, batch: &mut Batch, rec: &InstructionRecord, until: Timestamp) {
        if rec.action == Action::Freeze {
            let remind_at = until.plus_millis(-self.config.policy.reminder_lead_ms);
            batch.timer(
                remind_at.max(self.clock.now()),
                TimerKind::RenewalReminder,
                &rec.instruction_id,
                Some(until),
            );
        }
    }

    /// A renewal or release was answered: carry it out on the instruction it acts on.
    fn close_follow_up(&self, batch: &mut Batch, rec: &InstructionRecord) -> Result<()> {
        if rec.action.holds_money() {
            return Ok(());
        }
        let Some(target_id) = &rec.references else {
            return Ok(());
        };
        let target = self.existing(batch, target_id)?;
        let event = match (rec.state, rec.action) {
            (State::Executed, Action::ReleaseStop | Action::ReleaseFreeze) => Event::Released,
            (State::Executed, Action::RenewFreeze) => match rec.renew_until {
                Some(until) => Event::Renewed { until },
                None => Event::FollowUpClosed,
            },
            _ => Event::FollowUpClosed,
        };
        if let Some(next) = self.transition(batch, &target, &event)? {
            if let (Event::Renewed { until }, Some(_)) = (&event, next.effective_until) {
                batch.timer(
                    *until,
                    TimerKind::TermEnd,
                    &next.instruction_id,
                    Some(*until),
                );
                self.schedule_reminder(batch, &next, *until);
            }
            // A released stop or freeze whose release came after its own answer: clear the
            // unacknowledged entry too, the institution has nothing left to answer.
            if next.state == State::Released {
                batch.writes.remove(
                    TreeId::Unacked,
                    keys::unacked(next.institution(), next.action.priority(), next.sequence),
                );
            }
        }
        Ok(())
    }

    /// Issues next-level stops for the onward transfers of an answer, and records every hop.
    fn follow_funds(&self, batch: &mut Batch, rec: InstructionRecord) -> Result<InstructionRecord> {
        let transfers = rec
            .ack
            .as_ref()
            .map(|a| a.outcome.onward().to_vec())
            .unwrap_or_default();
        if transfers.is_empty() || !rec.state.holding() {
            return Ok(rec);
        }
        let ctx = CaseContext {
            writer: self,
            batch,
            rec: &rec,
        };
        let plan = funds::plan(
            &rec,
            &transfers,
            self.config.policy.max_stops_per_account,
            &ctx,
        );
        let mut hops = plan.hops;
        let notice_key = rec.notice_id.as_bytes();
        let mut notice: NoticeRecord = batch
            .read(&self.store, TreeId::Notices, notice_key)?
            .ok_or_else(|| Error::Store(format!("notice {} is missing", rec.notice_id)))?;
        let now = self.clock.now();
        for child in plan.children {
            let account = SuspectAccount {
                institution_code: crate::domain::ids::InstitutionCode::parse(
                    &child.transfer.institution_code,
                )
                .map_err(|rule| Error::invalid("onward_transfers.institution_code", rule))?,
                account_number: AccountNumber::parse(child.transfer.account_number.as_str())
                    .map_err(|rule| Error::invalid("onward_transfers.account_number", rule))?,
                account_name: child.transfer.account_name.clone(),
                account_kind: child.kind,
                amount: child.amount,
                follows: None,
            };
            let mut c = self.new_record(&notice, account, now)?;
            c.action = Action::StopPayment;
            c.answer_due_at = self.config.policy.answer_deadline(Action::StopPayment, now);
            c.parent = Some(rec.instruction_id.clone());
            c.depth = rec.depth + 1;
            c.follow_depth = rec.follow_depth;
            c.freeze = None;
            let c = self.stage_new(batch, c)?;
            for i in std::iter::once(child.hop).chain(child.also) {
                hops[i].instruction_id = Some(c.instruction_id.clone());
            }
            notice.instruction_ids.push(c.instruction_id.clone());
            tracing::info!(parent = %rec.instruction_id, child = %c.instruction_id, institution = %c.institution(), amount = c.account.amount.get(), "next-level stop issued");
        }
        let unreachable = hops
            .iter()
            .filter(|h| h.result == HopResult::Unreachable)
            .count();
        if unreachable > 0 {
            tracing::warn!(instruction_id = %rec.instruction_id, unreachable, "onward transfers to unregistered institutions");
        }
        batch.writes.put(TreeId::Notices, notice_key, &notice);
        Ok(self
            .transition(batch, &rec, &Event::HopsRecorded(hops))?
            .unwrap_or(rec))
    }

    fn delivered(&mut self, instruction_id: &str, batch: &mut Batch) -> Result<()> {
        if let Some(rec) = self.instruction(batch, instruction_id)? {
            self.transition(batch, &rec, &Event::Delivered)?;
        }
        Ok(())
    }

    fn fire_timers(&mut self, batch: &mut Batch) -> Result<usize> {
        let now = self.clock.now();
        let due = self.store.due_timers(now.millis(), TIMERS_PER_FIRE)?;
        let mut fired = 0;
        for timer in due {
            // Already handled in this batch (a second FireTimers before the commit).
            if matches!(batch.writes.staged(TreeId::Timers, &timer.key), Some(None)) {
                continue;
            }
            batch.writes.remove(TreeId::Timers, timer.key.clone());
            batch.must_sync = true;
            fired += 1;
            if timer.kind == Some(TimerKind::ListingEnd) {
                self.end_listing(&timer.instruction_id, batch)?;
                continue;
            }
            let Some(rec) = self.instruction(batch, &timer.instruction_id)? else {
                continue;
            };
            match timer.kind {
                Some(TimerKind::AnswerDue) => {
                    if let Some(next) = self.transition(batch, &rec, &Event::AnswerDeadline)? {
                        self.notify_institution(batch, &next, DeliveryKind::OverdueReminder)?;
                        tracing::warn!(instruction_id = %next.instruction_id, institution = %next.institution(), "answer overdue: escalated");
                    }
                }
                Some(TimerKind::TermEnd) => {
                    if let Some(next) = self.transition(batch, &rec, &Event::TermEnded)? {
                        self.notify_institution(batch, &next, DeliveryKind::Lapsed)?;
                        tracing::info!(instruction_id = %next.instruction_id, action = ?next.action, "term ended: lapsed");
                    }
                }
                Some(TimerKind::RenewalReminder) => {
                    let expected = self
                        .store
                        .tree(TreeId::Timers)
                        .get(&timer.key)?
                        .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes));
                    if rec.state.holding() && rec.effective_until.map(|t| t.millis()) == expected {
                        batch.events.push(Change {
                            record: rec.clone(),
                            kind: ChangeKind::RenewalReminder,
                        });
                        tracing::info!(instruction_id = %rec.instruction_id, "renewal reminder");
                    }
                }
                Some(TimerKind::ListingEnd) | None => {
                    tracing::warn!(key = ?timer.key, "unknown timer kind; dropped")
                }
            }
        }
        Ok(fired)
    }
}

/// A failed answer holds nothing and does not count toward limits.
fn failed(state: State) -> bool {
    matches!(
        state,
        State::Mismatch | State::AccountNotFound | State::Rejected
    )
}

/// The world as the fund-following planner sees it, through the batch's staged writes.
struct CaseContext<'a> {
    writer: &'a Writer,
    batch: &'a Batch,
    rec: &'a InstructionRecord,
}

impl CaseContext<'_> {
    fn on_account(&self, institution: &str, account: &str) -> Vec<InstructionRecord> {
        self.writer
            .account_records(
                self.batch,
                &self.rec.police_agency,
                &self.rec.case_reference,
                institution,
                account,
            )
            .unwrap_or_default()
    }
}

impl FundsContext for CaseContext<'_> {
    fn institution_kind(&self, code: &str) -> Option<AccountKind> {
        self.writer
            .registry
            .institution(code)
            .map(|i| match i.kind {
                InstitutionKind::Bank => AccountKind::Bank,
                InstitutionKind::Payment => AccountKind::Payment,
            })
    }

    fn holder_in_case(&self, institution: &str, account: &str) -> Option<String> {
        self.on_account(institution, account)
            .into_iter()
            .find(|r| r.action.holds_money() && !failed(r.state) && r.state != State::Released)
            .map(|r| r.instruction_id)
    }

    fn stops_in_case(&self, institution: &str, account: &str) -> usize {
        self.on_account(institution, account)
            .iter()
            .filter(|r| r.action == Action::StopPayment && !failed(r.state))
            .count()
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
