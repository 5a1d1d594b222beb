//! The writer's notice and instruction transitions: submissions, renewals and releases,
//! answers (with their terms, follow-ups and the chase of onward transfers), deliveries and
//! timers. Every method stages into the batch; the writer's loop commits it.

use std::collections::HashMap;

use super::writer::{Batch, TIMERS_PER_FIRE, Writer};
use super::{Acked, Change, ChangeKind, Submitted};
use crate::audit::AuditItem;
use crate::domain::funds::{self, FundsContext};
use crate::domain::ids::{AccountNumber, Timestamp};
use crate::domain::instruction::{self, Event, HopResult, InstructionRecord, Outcome, State};
use crate::domain::notice::{
    AccountKind, Action, FollowUpKind, NewFollowUp, NewNotice, NoticeRecord, RequestRecord,
    SuspectAccount,
};
use crate::error::{Error, Result};
use crate::participants::InstitutionKind;
use crate::store::{DeliveryKind, TimerKind, TreeId, keys};

impl Writer {
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
        Ok(InstructionRecord::pending(
            keys::instruction_id(self.store.next_id()?),
            notice,
            account,
            now,
            &self.config.policy,
        ))
    }

    pub(super) fn submit(
        &mut self,
        agency: &str,
        new: &NewNotice,
        batch: &mut Batch,
    ) -> Result<Submitted> {
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
                    if let Err(stops) =
                        instruction::check_stop_limit(&on_account, policy.max_stops_per_account)
                    {
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
        self.check_backlog(new, batch)?;
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

    /// Refuses a notice that would put an institution past its backlog limit: better a clear
    /// refusal now (police can phone the bank) than an instruction queued behind thousands.
    /// Renewals, releases and chases are never refused for this: they end or follow earlier
    /// instructions.
    fn check_backlog(&self, new: &NewNotice, batch: &Batch) -> Result<()> {
        let mut adding: HashMap<&str, (usize, u64)> = HashMap::new();
        for (i, account) in new.accounts.iter().enumerate() {
            adding
                .entry(account.institution_code.as_str())
                .or_insert((i, 0))
                .1 += 1;
        }
        let limit = self.config.max_backlog;
        for (institution, (first, n)) in adding {
            let open = self.open.get(institution).copied().unwrap_or(0)
                + batch.open_delta.get(institution).copied().unwrap_or(0);
            let open = u64::try_from(open).unwrap_or(0);
            if open + n > limit {
                return Err(Error::ResourceExhausted(format!(
                    "suspect_accounts[{first}].institution_code: {institution} is far behind: {open} instructions \
                     await its answer (limit {limit}); nothing was stored: reach {institution} by its emergency \
                     line and submit again when it has caught up"
                )));
            }
        }
        Ok(())
    }

    pub(super) fn follow_up(
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

    pub(super) fn acknowledge(
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
        let transfers = funds::transfers_to_follow(&rec).to_vec();
        if transfers.is_empty() {
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

    pub(super) fn delivered(&mut self, instruction_id: &str, batch: &mut Batch) -> Result<()> {
        if let Some(rec) = self.instruction(batch, instruction_id)? {
            self.transition(batch, &rec, &Event::Delivered)?;
        }
        Ok(())
    }

    pub(super) fn fire_timers(&mut self, batch: &mut Batch) -> Result<usize> {
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
            // Each timer on its own: one that cannot take effect (its institution left the
            // registry, say) is dropped and logged, and does not hold up every other timer.
            let mark = batch.mark();
            if let Err(e) = self.fire_one(batch, &timer) {
                batch.rollback(mark);
                if matches!(e, Error::Store(_)) {
                    return Err(e);
                }
                tracing::error!(key = ?timer.key, error = %e, "a timer could not take effect; dropped");
            }
        }
        Ok(fired)
    }

    fn fire_one(&mut self, batch: &mut Batch, timer: &crate::store::Timer) -> Result<()> {
        if timer.kind == Some(TimerKind::ListingEnd) {
            return self.end_listing(&timer.instruction_id, batch);
        }
        let Some(rec) = self.instruction(batch, &timer.instruction_id)? else {
            return Ok(());
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
        Ok(())
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
            .filter(|r| instruction::counts_as_stop(r))
            .count()
    }
}
