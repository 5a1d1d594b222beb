//! The instruction state machine: `apply(record, event, now, policy)` gives the next record or a
//! typed refusal. Every state change of an instruction in the hub goes through here.
//!
//! ```text
//!   PENDING --delivered--> DELIVERED          PENDING | DELIVERED --answer deadline--> OVERDUE
//!   PENDING | DELIVERED | OVERDUE --acknowledged--> EXECUTED | PARTIAL | QUEUED   (in force)
//!                                                 | MISMATCH | ACCOUNT_NOT_FOUND | REJECTED
//!   EXECUTED | PARTIAL | QUEUED --term ended--> LAPSED     (stops and freezes only)
//!   stop or freeze, not final  --released-->    RELEASED
//!   freeze in force            --renewed-->     (same state, later expiry)
//! ```
//! A renewal or release answered EXECUTED is final; so are MISMATCH, ACCOUNT_NOT_FOUND,
//! REJECTED, LAPSED and RELEASED. Timer events re-check their condition against the record, so
//! a timer that is no longer relevant (an answered instruction's deadline, an old expiry after
//! a renewal) changes nothing.

use serde::{Deserialize, Serialize};

use super::ids::{AccountNumber, Fen, Timestamp};
use super::notice::{
    Action, CaseFiling, FreezeMode, FreezeTerms, NoticeRecord, SuspectAccount, VictimTransfer,
};
use super::policy::{Policy, add_months, rfc3339};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    Pending,
    Delivered,
    Overdue,
    Executed,
    Partial,
    Queued,
    Mismatch,
    AccountNotFound,
    Rejected,
    Lapsed,
    Released,
}

pub const ALL_STATES: [State; 11] = [
    State::Pending,
    State::Delivered,
    State::Overdue,
    State::Executed,
    State::Partial,
    State::Queued,
    State::Mismatch,
    State::AccountNotFound,
    State::Rejected,
    State::Lapsed,
    State::Released,
];

impl State {
    /// Waiting for the institution's answer.
    pub fn awaiting_answer(self) -> bool {
        match self {
            State::Pending | State::Delivered | State::Overdue => true,
            State::Executed
            | State::Partial
            | State::Queued
            | State::Mismatch
            | State::AccountNotFound
            | State::Rejected
            | State::Lapsed
            | State::Released => false,
        }
    }

    /// Answered with money held (for a stop or freeze: in force until it lapses or is released).
    pub fn holding(self) -> bool {
        match self {
            State::Executed | State::Partial | State::Queued => true,
            State::Pending
            | State::Delivered
            | State::Overdue
            | State::Mismatch
            | State::AccountNotFound
            | State::Rejected
            | State::Lapsed
            | State::Released => false,
        }
    }

    /// Nothing more will happen to an instruction of `action` in this state.
    pub fn is_final(self, action: Action) -> bool {
        match self {
            State::Pending | State::Delivered | State::Overdue => false,
            State::Executed | State::Partial | State::Queued => !action.holds_money(),
            State::Mismatch
            | State::AccountNotFound
            | State::Rejected
            | State::Lapsed
            | State::Released => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MismatchField {
    AccountName,
    AccountNumber,
    Amount,
    TransferTime,
}

/// A transfer out of an account, as an institution reports it. The receiving institution may
/// be one the hub does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnwardTransfer {
    pub institution_code: String,
    pub account_number: AccountNumber,
    pub account_name: String,
    pub amount: Fen,
    pub time: Timestamp,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierFreeze {
    pub amount: Fen,
    pub expires_at: Timestamp,
    pub authority: String,
}

/// The institution's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Executed {
        held: Fen,
        balance: Fen,
        executed_at: Timestamp,
        #[serde(default)]
        onward: Vec<OnwardTransfer>,
    },
    Partial {
        held: Fen,
        balance: Fen,
        executed_at: Timestamp,
        #[serde(default)]
        onward: Vec<OnwardTransfer>,
    },
    Frozen {
        frozen: Fen,
        balance: Fen,
        available: Fen,
        not_frozen: Fen,
        not_frozen_reason: String,
        earlier: Vec<EarlierFreeze>,
        executed_at: Timestamp,
        onward: Vec<OnwardTransfer>,
    },
    Done {
        executed_at: Timestamp,
    },
    Mismatch {
        fields: Vec<MismatchField>,
        detail: String,
    },
    AccountNotFound {
        detail: String,
    },
    Rejected {
        reason: String,
    },
}

impl Outcome {
    /// The amount this answer holds, in fen (0 when nothing was held).
    pub fn held(&self) -> i64 {
        match self {
            Outcome::Executed { held, .. } | Outcome::Partial { held, .. } => held.get(),
            Outcome::Frozen { frozen, .. } => frozen.get(),
            Outcome::Done { .. }
            | Outcome::Mismatch { .. }
            | Outcome::AccountNotFound { .. }
            | Outcome::Rejected { .. } => 0,
        }
    }

    pub fn executed_at(&self) -> Option<Timestamp> {
        match self {
            Outcome::Executed { executed_at, .. }
            | Outcome::Partial { executed_at, .. }
            | Outcome::Frozen { executed_at, .. }
            | Outcome::Done { executed_at } => Some(*executed_at),
            Outcome::Mismatch { .. }
            | Outcome::AccountNotFound { .. }
            | Outcome::Rejected { .. } => None,
        }
    }

    pub fn onward(&self) -> &[OnwardTransfer] {
        match self {
            Outcome::Executed { onward, .. }
            | Outcome::Partial { onward, .. }
            | Outcome::Frozen { onward, .. } => onward,
            Outcome::Done { .. }
            | Outcome::Mismatch { .. }
            | Outcome::AccountNotFound { .. }
            | Outcome::Rejected { .. } => &[],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Outcome::Executed { .. } => "executed",
            Outcome::Partial { .. } => "partial",
            Outcome::Frozen { .. } => "frozen",
            Outcome::Done { .. } => "done",
            Outcome::Mismatch { .. } => "mismatch",
            Outcome::AccountNotFound { .. } => "account_not_found",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub outcome: Outcome,
    pub received_at: Timestamp,
    /// How late, in ms after the answer deadline; 0 when on time.
    #[serde(default)]
    pub late_by_ms: i64,
    /// Reported execution time minus the hub's clock, when outside the allowed skew (the hub's
    /// time was used instead); 0 otherwise.
    #[serde(default)]
    pub discrepancy_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HopResult {
    Followed,
    Unreachable,
    Cycle,
    DepthLimit,
    NothingLeft,
    NotRequested,
    StopLimit,
}

/// What the hub did with one onward transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub transfer: OnwardTransfer,
    pub result: HopResult,
    /// FOLLOWED: the next-level stop; CYCLE: the instruction already holding the account.
    pub instruction_id: Option<String>,
    /// FOLLOWED: the amount asked of the next level, in fen.
    pub followed: i64,
}

fn one() -> u8 {
    1
}

/// A stored instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionRecord {
    pub instruction_id: String,
    pub notice_id: String,
    pub case_reference: String,
    pub police_agency: String,
    pub action: Action,
    pub account: SuspectAccount,
    pub victim: VictimTransfer,
    pub state: State,
    /// The addressee's delivery sequence number.
    pub sequence: u64,
    pub created_at: Timestamp,
    pub answer_due_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub ack: Option<Acknowledgement>,
    pub updated_at: Timestamp,
    /// Bumped on every change, so that watchers can tell new from already seen.
    pub version: u32,
    /// Renewal or release: the instruction acted on. Freeze: the stop it follows.
    #[serde(default)]
    pub references: Option<String>,
    /// A next-level stop: the instruction whose answer reported the transfer.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default = "one")]
    pub depth: u8,
    /// Follow the money down to this level (0: do not).
    #[serde(default)]
    pub follow_depth: u8,
    #[serde(default)]
    pub freeze: Option<FreezeTerms>,
    #[serde(default)]
    pub case_filing: Option<CaseFiling>,
    /// A stop or freeze in force: when it lapses.
    #[serde(default)]
    pub effective_until: Option<Timestamp>,
    #[serde(default)]
    pub overdue_at: Option<Timestamp>,
    #[serde(default)]
    pub hops: Vec<Hop>,
    /// A renewal: the expiry asked for.
    #[serde(default)]
    pub renew_until: Option<Timestamp>,
    /// A renewal or release of this instruction that awaits its answer.
    #[serde(default)]
    pub pending_follow_up: Option<String>,
}

impl InstructionRecord {
    /// A new instruction of `notice` to the institution holding `account`, awaiting delivery:
    /// the notice's action, victim, case and freeze particulars; its answer deadline from
    /// `now`; sequence 0 until the addressee's delivery log gives it one.
    pub fn pending(
        instruction_id: String,
        notice: &NoticeRecord,
        account: SuspectAccount,
        now: Timestamp,
        policy: &Policy,
    ) -> InstructionRecord {
        InstructionRecord {
            instruction_id,
            notice_id: notice.notice_id.clone(),
            case_reference: notice.case_reference.clone(),
            police_agency: notice.police_agency.clone(),
            action: notice.action,
            account,
            victim: notice.victim.clone(),
            state: State::Pending,
            sequence: 0,
            created_at: now,
            answer_due_at: policy.answer_deadline(notice.action, now),
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
        }
    }

    pub fn institution(&self) -> &str {
        self.account.institution_code.as_str()
    }
    pub fn is_final(&self) -> bool {
        self.state.is_final(self.action)
    }
    /// The amount the institution reported holding, in fen.
    pub fn held(&self) -> i64 {
        self.ack.as_ref().map_or(0, |a| a.outcome.held())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instruction was sent on the institution's stream.
    Delivered,
    /// The institution answered.
    Acknowledged(Outcome),
    /// The answer deadline's timer fired.
    AnswerDeadline,
    /// The term's timer fired.
    TermEnded,
    /// A release of this stop or freeze was carried out.
    Released,
    /// A renewal of this freeze was carried out.
    Renewed {
        until: Timestamp,
    },
    /// A renewal or release of this instruction was issued, or its answer came back.
    FollowUpOpened(String),
    FollowUpClosed,
    /// What the hub did with the onward transfers of the answer.
    HopsRecorded(Vec<Hop>),
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed(Box<InstructionRecord>),
    /// Nothing changed: a repeated delivery, an identical answer, a timer no longer relevant.
    Unchanged,
}

fn change(
    rec: &InstructionRecord,
    now: Timestamp,
    f: impl FnOnce(&mut InstructionRecord),
) -> Applied {
    let mut next = rec.clone();
    f(&mut next);
    next.updated_at = now;
    next.version += 1;
    Applied::Changed(Box::new(next))
}

/// The renewal or release acting on `rec` no longer awaits its answer.
fn follow_up_closed(rec: &InstructionRecord, now: Timestamp) -> Applied {
    if rec.pending_follow_up.is_none() {
        Applied::Unchanged
    } else {
        change(rec, now, |r| r.pending_follow_up = None)
    }
}

/// The one transition function.
pub fn apply(
    rec: &InstructionRecord,
    event: &Event,
    now: Timestamp,
    policy: &Policy,
) -> Result<Applied, Error> {
    use State::*;
    Ok(match (rec.state, event) {
        (Pending, Event::Delivered) => change(rec, now, |r| {
            r.state = Delivered;
            r.delivered_at = Some(now);
        }),
        (Overdue, Event::Delivered) if rec.delivered_at.is_none() => {
            change(rec, now, |r| r.delivered_at = Some(now))
        }
        (
            Overdue | Delivered | Executed | Partial | Queued | Mismatch | AccountNotFound
            | Rejected | Lapsed | Released,
            Event::Delivered,
        ) => Applied::Unchanged,

        (Pending | Delivered | Overdue, Event::Acknowledged(outcome)) => {
            let state = state_for(rec, outcome)?;
            let late_by_ms = (now.millis() - rec.answer_due_at.millis()).max(0);
            let (start, discrepancy_ms) = match outcome.executed_at() {
                Some(at) if (at.millis() - now.millis()).abs() > policy.max_execution_skew_ms => {
                    (now, at.millis() - now.millis())
                }
                Some(at) => (at, 0),
                None => (now, 0),
            };
            let effective_until =
                (rec.action.holds_money() && state.holding()).then(|| match rec.action {
                    Action::Freeze => {
                        let major = rec.freeze.as_ref().is_some_and(|f| f.major.is_some());
                        add_months(start, policy.freeze_term_months(major))
                    }
                    Action::StopPayment
                    | Action::RenewFreeze
                    | Action::ReleaseStop
                    | Action::ReleaseFreeze => start.plus_millis(policy.stop_term_ms),
                });
            change(rec, now, |r| {
                r.state = state;
                r.effective_until = effective_until;
                r.ack = Some(Acknowledgement {
                    outcome: outcome.clone(),
                    received_at: now,
                    late_by_ms,
                    discrepancy_ms,
                });
            })
        }
        (
            Executed | Partial | Queued | Mismatch | AccountNotFound | Rejected | Lapsed | Released,
            Event::Acknowledged(outcome),
        ) => match &rec.ack {
            Some(ack) if ack.outcome == *outcome => Applied::Unchanged,
            recorded => {
                return Err(Error::FailedPrecondition(format!(
                    "instruction {} was already answered and is {:?}; this answer differs from the one recorded \
                     ({}{}): only the identical answer may be repeated",
                    rec.instruction_id,
                    rec.state,
                    recorded.as_ref().map_or("none", |a| a.outcome.name()),
                    recorded
                        .as_ref()
                        .and_then(|a| a.outcome.executed_at())
                        .map_or(String::new(), |t| format!(", executed_at {}", rfc3339(t))),
                )));
            }
        },

        (Pending | Delivered, Event::AnswerDeadline) if now >= rec.answer_due_at => {
            change(rec, now, |r| {
                r.state = Overdue;
                r.overdue_at = Some(now);
            })
        }
        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::AnswerDeadline,
        ) => Applied::Unchanged,

        (Executed | Partial | Queued, Event::TermEnded)
            if rec.action.holds_money() && rec.effective_until.is_some_and(|t| t <= now) =>
        {
            change(rec, now, |r| {
                r.state = Lapsed;
                r.pending_follow_up = None;
            })
        }
        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::TermEnded,
        ) => Applied::Unchanged,

        (Pending | Delivered | Overdue | Executed | Partial | Queued, Event::Released)
            if rec.action.holds_money() =>
        {
            change(rec, now, |r| {
                r.state = Released;
                r.pending_follow_up = None;
            })
        }
        // A release or renewal carried out on an instruction it can no longer act on (answered
        // MISMATCH, lapsed or released meanwhile): nothing to carry out, but it is answered,
        // so the instruction must not go on pointing at it as awaiting its answer.
        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::Released,
        ) => follow_up_closed(rec, now),

        (Executed | Partial | Queued, Event::Renewed { until }) if rec.action == Action::Freeze => {
            change(rec, now, |r| {
                r.effective_until = Some(*until);
                r.pending_follow_up = None;
            })
        }
        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::Renewed { .. },
        ) => follow_up_closed(rec, now),

        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::FollowUpOpened(id),
        ) => {
            if let Some(other) = &rec.pending_follow_up {
                return Err(Error::FailedPrecondition(format!(
                    "instruction_id: {other} acting on {} awaits its answer; wait for it first",
                    rec.instruction_id
                )));
            }
            change(rec, now, |r| r.pending_follow_up = Some(id.clone()))
        }
        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::FollowUpClosed,
        ) => follow_up_closed(rec, now),

        (Executed | Partial | Queued, Event::HopsRecorded(hops)) if rec.action.holds_money() => {
            change(rec, now, |r| r.hops = hops.clone())
        }
        (
            Pending | Delivered | Overdue | Executed | Partial | Queued | Mismatch
            | AccountNotFound | Rejected | Lapsed | Released,
            Event::HopsRecorded(_),
        ) => {
            return Err(Error::FailedPrecondition(format!(
                "instruction {} holds nothing: onward transfers cannot be recorded on it",
                rec.instruction_id
            )));
        }
    })
}

/// The state an answer puts the instruction in, if the answer fits the instruction.
fn state_for(rec: &InstructionRecord, outcome: &Outcome) -> Result<State, Error> {
    let requested = rec.account.amount.get();
    if let Some(i) = outcome
        .onward()
        .iter()
        .position(|t| t.time < rec.victim.transfer_time)
    {
        return Err(Error::invalid(
            format!("{}.onward_transfers[{i}].time", outcome.name()),
            "must not be before the victim's transfer: only money that left after it is followed",
        ));
    }
    let wrong_kind = || {
        let expected = match rec.action {
            Action::StopPayment => "executed, partial, mismatch, account_not_found or rejected",
            Action::Freeze => "frozen, mismatch, account_not_found or rejected",
            Action::RenewFreeze | Action::ReleaseStop | Action::ReleaseFreeze => {
                "done, account_not_found or rejected"
            }
        };
        Err(Error::invalid(
            "outcome",
            format!(
                "{} does not answer a {:?} instruction; expected {expected}",
                outcome.name(),
                rec.action
            ),
        ))
    };
    match (rec.action, outcome) {
        (Action::StopPayment, Outcome::Executed { held, .. }) if held.get() != requested => {
            Err(Error::invalid(
                "executed.amount_held_fen",
                format!(
                    "must equal the amount requested ({requested} fen); report a smaller hold as PARTIAL"
                ),
            ))
        }
        (Action::StopPayment, Outcome::Executed { .. }) => Ok(State::Executed),
        (Action::StopPayment, Outcome::Partial { held, .. }) if held.get() >= requested => {
            Err(Error::invalid(
                "partial.amount_held_fen",
                format!(
                    "must be less than the amount requested ({requested} fen); report the whole amount as EXECUTED"
                ),
            ))
        }
        (Action::StopPayment, Outcome::Partial { .. }) => Ok(State::Partial),
        (
            Action::Freeze,
            Outcome::Frozen {
                frozen,
                balance,
                available,
                not_frozen,
                not_frozen_reason,
                earlier,
                ..
            },
        ) => {
            let (frozen, not_frozen) = (frozen.get(), not_frozen.get());
            let amount_limited = rec
                .freeze
                .as_ref()
                .is_none_or(|f| f.mode == FreezeMode::AmountLimited);
            if amount_limited && frozen + not_frozen != requested {
                return Err(Error::invalid(
                    "frozen.amount_not_frozen_fen",
                    format!(
                        "amount_frozen_fen + amount_not_frozen_fen must equal the amount requested ({requested} fen) for an amount-limited freeze"
                    ),
                ));
            }
            if frozen > balance.get() || available.get() > balance.get() {
                return Err(Error::invalid(
                    "frozen.balance_fen",
                    "must be at least amount_frozen_fen and available_balance_fen",
                ));
            }
            if not_frozen > 0 && not_frozen_reason.is_empty() {
                return Err(Error::invalid(
                    "frozen.not_frozen_reason",
                    "is required when amount_not_frozen_fen > 0",
                ));
            }
            if frozen == 0 && earlier.is_empty() {
                return Err(Error::invalid(
                    "frozen.amount_frozen_fen",
                    "nothing frozen and no earlier freeze to queue behind: answer REJECTED with the reason instead",
                ));
            }
            Ok(if !earlier.is_empty() {
                State::Queued
            } else if not_frozen > 0 {
                State::Partial
            } else {
                State::Executed
            })
        }
        (
            Action::RenewFreeze | Action::ReleaseStop | Action::ReleaseFreeze,
            Outcome::Done { .. },
        ) => Ok(State::Executed),
        (_, Outcome::Mismatch { .. }) if rec.action.holds_money() => Ok(State::Mismatch),
        (_, Outcome::AccountNotFound { .. }) => Ok(State::AccountNotFound),
        (_, Outcome::Rejected { .. }) => Ok(State::Rejected),
        (
            Action::StopPayment
            | Action::Freeze
            | Action::RenewFreeze
            | Action::ReleaseStop
            | Action::ReleaseFreeze,
            Outcome::Executed { .. }
            | Outcome::Partial { .. }
            | Outcome::Frozen { .. }
            | Outcome::Done { .. }
            | Outcome::Mismatch { .. },
        ) => wrong_kind(),
    }
}

/// Does this record count toward the limit of stops on its account in its case? Every
/// stop-payment counts except one the institution could not carry out (MISMATCH,
/// ACCOUNT_NOT_FOUND, REJECTED): it held nothing. A released or lapsed stop still counts.
pub fn counts_as_stop(rec: &InstructionRecord) -> bool {
    rec.action == Action::StopPayment
        && !matches!(
            rec.state,
            State::Mismatch | State::AccountNotFound | State::Rejected
        )
}

/// May one more stop-payment be issued on an account whose instructions in the case are
/// `on_account`? At most `max` stops count (two: about 96 hours; then a freeze must take
/// over). Refused with the ids of the stops that count.
pub fn check_stop_limit(on_account: &[InstructionRecord], max: usize) -> Result<(), Vec<&str>> {
    let stops: Vec<&str> = on_account
        .iter()
        .filter(|r| counts_as_stop(r))
        .map(|r| r.instruction_id.as_str())
        .collect();
    if stops.len() >= max {
        return Err(stops);
    }
    Ok(())
}

/// May this stop or freeze be released now?
pub fn check_release(rec: &InstructionRecord) -> Result<(), Error> {
    if !rec.action.holds_money() {
        return Err(Error::FailedPrecondition(format!(
            "instruction_id: {} is a {:?}, not a stop-payment or freeze; only those can be released",
            rec.instruction_id, rec.action
        )));
    }
    if rec.state.is_final(rec.action) {
        return Err(Error::FailedPrecondition(format!(
            "instruction_id: {} is {:?}: there is nothing to release",
            rec.instruction_id, rec.state
        )));
    }
    if let Some(other) = &rec.pending_follow_up {
        return Err(Error::FailedPrecondition(format!(
            "instruction_id: {other} acting on {} awaits its answer; wait for it first",
            rec.instruction_id
        )));
    }
    Ok(())
}

/// May this freeze be renewed now, and until when? Returns the new expiry.
pub fn check_renewal(
    rec: &InstructionRecord,
    until: Option<Timestamp>,
    now: Timestamp,
    policy: &Policy,
) -> Result<Timestamp, Error> {
    if rec.action != Action::Freeze {
        return Err(Error::FailedPrecondition(format!(
            "instruction_id: {} is a {:?}; only a freeze can be renewed",
            rec.instruction_id, rec.action
        )));
    }
    let expiry = match (rec.state.holding(), rec.effective_until) {
        (true, Some(expiry)) => expiry,
        _ => {
            return Err(Error::FailedPrecondition(format!(
                "instruction_id: freeze {} is {:?}; only a freeze in force can be renewed",
                rec.instruction_id, rec.state
            )));
        }
    };
    if let Some(other) = &rec.pending_follow_up {
        return Err(Error::FailedPrecondition(format!(
            "instruction_id: {other} acting on {} awaits its answer; wait for it first",
            rec.instruction_id
        )));
    }
    if now >= expiry {
        return Err(Error::FailedPrecondition(format!(
            "instruction_id: freeze {} expired at {}; a renewal must arrive before expiry",
            rec.instruction_id,
            rfc3339(expiry)
        )));
    }
    if now.millis() > expiry.millis() - policy.renewal_lead_ms {
        return Err(Error::FailedPrecondition(format!(
            "renewal rule: a renewal must arrive at least {} days before expiry; freeze {} expires at {}, \
             the renewal window closed at {}",
            policy.renewal_lead_ms / 86_400_000,
            rec.instruction_id,
            rfc3339(expiry),
            rfc3339(expiry.plus_millis(-policy.renewal_lead_ms))
        )));
    }
    let major = rec.freeze.as_ref().is_some_and(|f| f.major.is_some());
    let longest = add_months(expiry, policy.freeze_term_months(major));
    let until = until.unwrap_or(longest);
    if until <= expiry {
        return Err(Error::invalid(
            "renew_until",
            "must be after the freeze's current expiry",
        ));
    }
    if until > longest {
        return Err(Error::invalid(
            "renew_until",
            format!(
                "a renewal extends a freeze by at most one term ({} months): at most {}",
                policy.freeze_term_months(major),
                rfc3339(longest)
            ),
        ));
    }
    Ok(until)
}

#[cfg(test)]
#[path = "instruction_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "instruction_props.rs"]
mod props;
