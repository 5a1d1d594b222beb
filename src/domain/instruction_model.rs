//! A model of the hub driving the instruction state machine, for property tests and fuzzing:
//! the instructions on one account in one case, and the steps the hub takes on them (submit a
//! stop or freeze, deliver, answer, repeat an answer, fire timers, issue and answer releases
//! and renewals, record onward hops), each through the same pure functions the hub calls
//! ([`instruction::apply`], [`instruction::check_stop_limit`], [`instruction::check_release`],
//! [`instruction::check_renewal`], [`funds::plan`]). After every step [`run`] checks the
//! invariants below and returns the first one broken. Not part of the hub's API: it exists so
//! that `cargo test` (proptest) and `fuzz/` (cargo-fuzz) drive one model.
//!
//! Invariants:
//! - amounts are conserved: what an answer holds never exceeds what was asked (a receive-only
//!   freeze excepted: it holds whatever comes in, within the balance); a stop EXECUTED holds
//!   exactly what was asked and PARTIAL less; an amount-limited freeze's frozen and not-frozen
//!   amounts add up to what was asked; nothing is frozen beyond the balance; recorded hops
//!   follow at most what flowed on each transfer and together at most what was not held;
//! - no third stop: at most `max_stops_per_account` stops count on the account at any time,
//!   and no more than that ever held money; a stop is refused exactly when the limit is
//!   reached;
//! - no transition out of a final state, and every state change is an edge of the diagram in
//!   [`instruction`];
//! - a record is consistent with its answer (state, term, lateness) and never claims that a
//!   renewal or release awaits its answer when none does; a freeze's expiry only moves later,
//!   by at most one term per renewal;
//! - refusals are typed: INVALID_ARGUMENT naming a field, or FAILED_PRECONDITION.

use super::funds::{self, FundsContext};
use super::ids::{AccountNumber, Fen, InstitutionCode, Timestamp};
use super::instruction::{
    self, Acknowledgement, Applied, EarlierFreeze, Event, InstructionRecord, OnwardTransfer,
    Outcome, State,
};
use super::notice::{
    AccountKind, Action, CaseFiling, FreezeMode, FreezeTerms, MajorApproval, NoticeRecord,
    SuspectAccount, VictimTransfer,
};
use super::policy::{Policy, add_months};
use crate::error::Error;

const MINUTE: i64 = 60_000;
/// 2026-03-10T00:00Z: the first instruction is created.
const T0: i64 = 1_773_100_800_000;
/// The victim's transfer, an hour before T0.
const TRANSFER: i64 = T0 - 60 * MINUTE;
/// At most this many instructions on the account (stops, freezes and their follow-ups).
const MAX_RECORDS: usize = 16;

/// What every instruction of the run shares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Start {
    /// The amount each stop or freeze asks for, in fen (0 is taken as 1).
    pub requested: u32,
    pub receive_only: bool,
    pub major: bool,
    /// Follow the money down to this level (0-5; more is taken mod 6).
    pub follow_depth: u8,
}

/// An amount in an answer, relative to what was asked, so that the interesting edges
/// (exactly, one less, one more) come up often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Amount {
    All,
    AllBut(u16),
    More(u16),
    Exactly(u32),
}

/// A transfer out of the account, as an answer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Onward {
    pub amount: Amount,
    /// Minutes after the victim's transfer (negative: before it, which an answer may not say).
    pub minutes_after_transfer: i16,
    /// Which of a few receiving accounts (and institutions, one of them unregistered).
    pub to: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Reply {
    /// EXECUTED, or PARTIAL if `partial`.
    Stopped {
        partial: bool,
        held: Amount,
        balance: Amount,
        skew_minutes: i16,
        onward: Vec<Onward>,
    },
    Frozen {
        frozen: Amount,
        balance: Amount,
        available: Amount,
        not_frozen: Amount,
        reason: bool,
        earlier: bool,
        skew_minutes: i16,
        onward: Vec<Onward>,
    },
    Done {
        skew_minutes: i16,
    },
    Mismatch,
    NotFound,
    Rejected,
}

/// One thing the hub does. `i` picks an instruction on the account (mod how many there are).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Step {
    /// The hub's clock moves on.
    Wait {
        minutes: u16,
    },
    SubmitStop,
    SubmitFreeze,
    Deliver {
        i: u8,
    },
    Answer {
        i: u8,
        reply: Reply,
    },
    /// The institution sends the answer it already gave again.
    Repeat {
        i: u8,
    },
    AnswerDeadline {
        i: u8,
    },
    TermEnded {
        i: u8,
    },
    Release {
        i: u8,
    },
    Renew {
        i: u8,
        days: Option<u16>,
    },
    /// Follow the money from the instruction's answer, as the hub does after an answer.
    Hops {
        i: u8,
    },
}

/// What the model knows about an instruction that the record does not say.
#[derive(Debug, Clone)]
struct Tracked {
    rec: InstructionRecord,
    /// A renewal or release acting on this instruction, by index, while it awaits its answer.
    follow_up: Option<usize>,
    ever_held: bool,
}

struct World {
    policy: Policy,
    start: Start,
    now: Timestamp,
    records: Vec<Tracked>,
}

/// The receiving accounts of onward transfers: a second bank, a payment institution, the
/// account itself (money sent back), and an institution the hub does not know.
const RECEIVERS: [(&str, &str); 4] = [
    ("CCB", "621700000009"),
    ("ALIPAY", "208800000003"),
    ("ICBC", "622202123456"),
    ("NOPE", "999900000001"),
];

/// The fund planner's view: every receiver but NOPE is registered; nothing else is held.
struct Receivers;

impl FundsContext for Receivers {
    fn institution_kind(&self, code: &str) -> Option<AccountKind> {
        match code {
            "CCB" | "ICBC" => Some(AccountKind::Bank),
            "ALIPAY" => Some(AccountKind::Payment),
            _ => None,
        }
    }
    fn holder_in_case(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn stops_in_case(&self, _: &str, _: &str) -> usize {
        0
    }
}

fn fen(v: i64) -> Fen {
    Fen::new_unchecked(v)
}

/// The model's own codes and numbers are well formed.
fn code(s: &str) -> InstitutionCode {
    InstitutionCode::parse(s).unwrap_or_else(|rule| unreachable!("{s}: {rule}"))
}

fn number(s: &str) -> AccountNumber {
    AccountNumber::parse(s).unwrap_or_else(|rule| unreachable!("{s}: {rule}"))
}

impl Amount {
    /// The amount in fen, relative to `requested`; at least `floor`.
    fn of(self, requested: i64, floor: i64) -> i64 {
        let v = match self {
            Amount::All => requested,
            Amount::AllBut(k) => requested - i64::from(k),
            Amount::More(k) => requested + i64::from(k),
            Amount::Exactly(v) => i64::from(v),
        };
        v.max(floor)
    }
}

impl World {
    fn requested(&self) -> i64 {
        i64::from(self.start.requested.max(1))
    }

    fn onward(&self, list: &[Onward]) -> Vec<OnwardTransfer> {
        list.iter()
            .take(8)
            .enumerate()
            .map(|(n, o)| {
                let (institution, account) = RECEIVERS[usize::from(o.to) % RECEIVERS.len()];
                OnwardTransfer {
                    institution_code: institution.into(),
                    account_number: number(account),
                    account_name: "Next Holder".into(),
                    amount: fen(o.amount.of(self.requested(), 1)),
                    time: Timestamp::from_millis(
                        TRANSFER + i64::from(o.minutes_after_transfer) * MINUTE,
                    ),
                    reference: format!("TX-{n}"),
                }
            })
            .collect()
    }

    /// The outcome a reply stands for, as it would arrive parsed: amounts held are positive,
    /// balances not negative, free text present where required.
    fn outcome(&self, reply: &Reply) -> Outcome {
        let r = self.requested();
        let at = |skew: i16| self.now.plus_millis(i64::from(skew) * MINUTE);
        match reply {
            Reply::Stopped {
                partial,
                held,
                balance,
                skew_minutes,
                onward,
            } => {
                let (held, balance) = (fen(held.of(r, 1)), fen(balance.of(r, 0)));
                let (executed_at, onward) = (at(*skew_minutes), self.onward(onward));
                if *partial {
                    Outcome::Partial {
                        held,
                        balance,
                        executed_at,
                        onward,
                    }
                } else {
                    Outcome::Executed {
                        held,
                        balance,
                        executed_at,
                        onward,
                    }
                }
            }
            Reply::Frozen {
                frozen,
                balance,
                available,
                not_frozen,
                reason,
                earlier,
                skew_minutes,
                onward,
            } => Outcome::Frozen {
                frozen: fen(frozen.of(r, 0)),
                balance: fen(balance.of(r, 0)),
                available: fen(available.of(r, 0)),
                not_frozen: fen(not_frozen.of(r, 0)),
                not_frozen_reason: if *reason {
                    "insufficient balance".into()
                } else {
                    String::new()
                },
                earlier: if *earlier {
                    vec![EarlierFreeze {
                        amount: fen(r),
                        expires_at: self.now.plus_millis(90 * 24 * 60 * MINUTE),
                        authority: "PSB-BJ".into(),
                    }]
                } else {
                    Vec::new()
                },
                executed_at: at(*skew_minutes),
                onward: self.onward(onward),
            },
            Reply::Done { skew_minutes } => Outcome::Done {
                executed_at: at(*skew_minutes),
            },
            Reply::Mismatch => Outcome::Mismatch {
                fields: vec![instruction::MismatchField::AccountName],
                detail: String::new(),
            },
            Reply::NotFound => Outcome::AccountNotFound {
                detail: String::new(),
            },
            Reply::Rejected => Outcome::Rejected {
                reason: "court order".into(),
            },
        }
    }

    fn new_record(&self, action: Action) -> InstructionRecord {
        let r = self.requested();
        let n = self.records.len() + 1;
        let freezes = matches!(action, Action::Freeze | Action::RenewFreeze);
        let notice = NoticeRecord {
            notice_id: format!("N{n:012}"),
            request_id: format!("R-{n}"),
            case_reference: "CASE-2026-0001".into(),
            police_agency: "PSB-SZ".into(),
            action,
            victim: VictimTransfer {
                institution_code: code("CMB"),
                account_number: number("621483000001"),
                account_name: "Li Si".into(),
                currency: "CNY".into(),
                amount: fen(r),
                transfer_time: Timestamp::from_millis(TRANSFER),
                transaction_reference: "TX-0001".into(),
            },
            instruction_ids: Vec::new(),
            created_at: self.now,
            payload_hash: String::new(),
            case_filing: freezes.then(|| CaseFiling {
                case_number: "LA-2026-0001".into(),
                filed_at: Timestamp::from_millis(T0 - 24 * 60 * MINUTE),
            }),
            freeze: freezes.then(|| FreezeTerms {
                mode: if self.start.receive_only {
                    FreezeMode::ReceiveOnly
                } else {
                    FreezeMode::AmountLimited
                },
                major: self.start.major.then(|| MajorApproval {
                    reference: "MAJ-1".into(),
                    approved_by: "PSB-SZ".into(),
                }),
            }),
            follow_depth: self.start.follow_depth % 6,
        };
        let account = SuspectAccount {
            institution_code: code("ICBC"),
            account_number: number("622202123456"),
            account_name: "Wang Wu".into(),
            account_kind: AccountKind::Bank,
            amount: fen(r),
            follows: None,
        };
        let mut rec = InstructionRecord::pending(
            format!("I{n:012}"),
            &notice,
            account,
            self.now,
            &self.policy,
        );
        rec.sequence = n as u64;
        rec
    }

    fn index(&self, i: u8) -> Option<usize> {
        (!self.records.is_empty()).then(|| usize::from(i) % self.records.len())
    }

    fn push(&mut self, rec: InstructionRecord) -> usize {
        self.records.push(Tracked {
            rec,
            follow_up: None,
            ever_held: false,
        });
        self.records.len() - 1
    }

    /// Applies `event` to instruction `i` as the hub does, checking the step's invariants.
    /// Returns whether it changed the record.
    fn apply(&mut self, i: usize, event: &Event) -> Result<bool, String> {
        let before = self.records[i].rec.clone();
        let result = instruction::apply(&before, event, self.now, &self.policy);
        check_step(&before, event, self.now, &result, &self.policy)
            .map_err(|e| format!("{} on {event:?}: {e}", before.instruction_id))?;
        let Ok(Applied::Changed(after)) = result else {
            return Ok(false);
        };
        let tracked = &mut self.records[i];
        tracked.ever_held |= after.state.holding() && after.action.holds_money();
        tracked.rec = *after;
        Ok(true)
    }

    /// A renewal or release answered: the hub carries it out on its target (or, answered
    /// otherwise, closes it), as `close_follow_up` does.
    fn close_follow_up(&mut self, follow_up: usize) -> Result<(), String> {
        let rec = &self.records[follow_up].rec;
        let Some(target) = self
            .records
            .iter()
            .position(|t| t.follow_up == Some(follow_up))
        else {
            return Ok(());
        };
        let event = match (rec.state, rec.action, rec.renew_until) {
            (State::Executed, Action::ReleaseStop | Action::ReleaseFreeze, _) => Event::Released,
            (State::Executed, Action::RenewFreeze, Some(until)) => Event::Renewed { until },
            _ => Event::FollowUpClosed,
        };
        let expiry_before = self.records[target].rec.effective_until;
        self.records[target].follow_up = None;
        self.apply(target, &event)?;
        let after = &self.records[target].rec;
        if let (Event::Renewed { until }, Some(old), Some(new)) =
            (&event, expiry_before, after.effective_until)
        {
            let major = after.freeze.as_ref().is_some_and(|f| f.major.is_some());
            let longest = add_months(old, self.policy.freeze_term_months(major));
            if new != old && (new != *until || new <= old || new > longest) {
                return Err(format!(
                    "a renewal moved {}'s expiry from {old:?} to {new:?} (asked {until:?}, at most {longest:?})",
                    after.instruction_id
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Wait { minutes } => {
                self.now = self.now.plus_millis(i64::from(*minutes) * MINUTE);
            }
            Step::SubmitStop => {
                if self.records.len() >= MAX_RECORDS {
                    return Ok(());
                }
                let on_account: Vec<InstructionRecord> =
                    self.records.iter().map(|t| t.rec.clone()).collect();
                let counted = on_account
                    .iter()
                    .filter(|r| instruction::counts_as_stop(r))
                    .count();
                let max = self.policy.max_stops_per_account;
                match instruction::check_stop_limit(&on_account, max) {
                    Ok(()) if counted < max => {
                        self.push(self.new_record(Action::StopPayment));
                    }
                    Err(ids) if counted >= max && ids.len() == counted => {}
                    other => {
                        return Err(format!(
                            "stop limit: {counted} stops count, max {max}, decision {other:?}"
                        ));
                    }
                }
            }
            Step::SubmitFreeze => {
                if self.records.len() < MAX_RECORDS {
                    self.push(self.new_record(Action::Freeze));
                }
            }
            Step::Deliver { i } => {
                if let Some(i) = self.index(*i) {
                    self.apply(i, &Event::Delivered)?;
                }
            }
            Step::Answer { i, reply } => {
                if let Some(i) = self.index(*i) {
                    let outcome = self.outcome(reply);
                    if self.apply(i, &Event::Acknowledged(outcome))? {
                        self.close_follow_up(i)?;
                    }
                }
            }
            Step::Repeat { i } => {
                if let Some(i) = self.index(*i) {
                    let rec = &self.records[i].rec;
                    if let Some(ack) = &rec.ack {
                        let event = Event::Acknowledged(ack.outcome.clone());
                        let result = instruction::apply(rec, &event, self.now, &self.policy);
                        if !matches!(result, Ok(Applied::Unchanged)) {
                            return Err(format!(
                                "{}: the same answer again gave {result:?}",
                                rec.instruction_id
                            ));
                        }
                    }
                }
            }
            Step::AnswerDeadline { i } => {
                if let Some(i) = self.index(*i) {
                    self.apply(i, &Event::AnswerDeadline)?;
                }
            }
            Step::TermEnded { i } => {
                if let Some(i) = self.index(*i) {
                    let expiry = self.records[i].rec.effective_until;
                    if self.apply(i, &Event::TermEnded)? && expiry.is_none_or(|t| t > self.now) {
                        return Err(format!("lapsed before its term ended ({expiry:?})"));
                    }
                }
            }
            Step::Release { i } => {
                if let Some(i) = self.index(*i) {
                    if self.records.len() >= MAX_RECORDS
                        || instruction::check_release(&self.records[i].rec).is_err()
                    {
                        return Ok(());
                    }
                    let target = &self.records[i].rec;
                    let action = if target.action == Action::Freeze {
                        Action::ReleaseFreeze
                    } else {
                        Action::ReleaseStop
                    };
                    let mut release = self.new_record(action);
                    release.references = Some(target.instruction_id.clone());
                    self.open_follow_up(i, release)?;
                }
            }
            Step::Renew { i, days } => {
                if let Some(i) = self.index(*i) {
                    let until = days.map(|d| self.now.plus_millis(i64::from(d) * 24 * 60 * MINUTE));
                    let target = &self.records[i].rec;
                    if self.records.len() >= MAX_RECORDS {
                        return Ok(());
                    }
                    let Ok(until) =
                        instruction::check_renewal(target, until, self.now, &self.policy)
                    else {
                        return Ok(());
                    };
                    let mut renewal = self.new_record(Action::RenewFreeze);
                    renewal.references = Some(target.instruction_id.clone());
                    renewal.renew_until = Some(until);
                    self.open_follow_up(i, renewal)?;
                }
            }
            Step::Hops { i } => {
                if let Some(i) = self.index(*i) {
                    let rec = &self.records[i].rec;
                    let transfers = funds::transfers_to_follow(rec);
                    if transfers.is_empty() {
                        return Ok(());
                    }
                    let plan = funds::plan(
                        rec,
                        transfers,
                        self.policy.max_stops_per_account,
                        &Receivers,
                    );
                    self.apply(i, &Event::HopsRecorded(plan.hops))?;
                }
            }
        }
        self.check_world()
    }

    fn open_follow_up(&mut self, target: usize, rec: InstructionRecord) -> Result<(), String> {
        let id = rec.instruction_id.clone();
        let follow_up = self.push(rec);
        if !self.apply(target, &Event::FollowUpOpened(id))? {
            return Err("a follow-up that passed its check was not recorded".into());
        }
        self.records[target].follow_up = Some(follow_up);
        Ok(())
    }

    /// The invariants over all instructions on the account.
    fn check_world(&self) -> Result<(), String> {
        let max = self.policy.max_stops_per_account;
        let counted = self
            .records
            .iter()
            .filter(|t| instruction::counts_as_stop(&t.rec))
            .count();
        if counted > max {
            return Err(format!("{counted} stops count on one account (max {max})"));
        }
        let held = self
            .records
            .iter()
            .filter(|t| t.rec.action == Action::StopPayment && t.ever_held)
            .count();
        if held > max {
            return Err(format!(
                "{held} stops held money on one account (max {max})"
            ));
        }
        for t in &self.records {
            let claimed = t.rec.pending_follow_up.as_deref();
            let awaiting = t
                .follow_up
                .map(|f| self.records[f].rec.instruction_id.as_str());
            if claimed.is_some() && claimed != awaiting {
                return Err(format!(
                    "{} says {claimed:?} awaits its answer, but {awaiting:?} does",
                    t.rec.instruction_id
                ));
            }
        }
        Ok(())
    }
}

/// Runs `steps` from an empty account: the instructions on it at the end, or the first
/// invariant broken.
pub fn run(start: &Start, steps: &[Step]) -> Result<Vec<InstructionRecord>, String> {
    let mut world = World {
        policy: Policy::default(),
        start: start.clone(),
        now: Timestamp::from_millis(T0),
        records: Vec::new(),
    };
    for (n, step) in steps.iter().enumerate() {
        world
            .step(step)
            .map_err(|e| format!("step {n} ({step:?}): {e}"))?;
    }
    Ok(world.records.into_iter().map(|t| t.rec).collect())
}

/// The states an instruction of `action` may move to from `from` in one step.
fn edge(action: Action, from: State, to: State) -> bool {
    use State::*;
    if from == to {
        return true;
    }
    let answered = matches!(
        to,
        Executed | Partial | Queued | Mismatch | AccountNotFound | Rejected
    );
    match from {
        Pending => matches!(to, Delivered | Overdue | Released) || answered,
        Delivered | Overdue => matches!(to, Overdue | Released) || answered,
        Executed | Partial | Queued => action.holds_money() && matches!(to, Lapsed | Released),
        Mismatch | AccountNotFound | Rejected | Lapsed | Released => false,
    }
}

/// Checks one application of `event`: a refusal is typed; a change keeps what identifies the
/// instruction, takes no final state anywhere, follows an edge and leaves a consistent record.
pub fn check_step(
    before: &InstructionRecord,
    event: &Event,
    now: Timestamp,
    result: &Result<Applied, Error>,
    policy: &Policy,
) -> Result<(), String> {
    let after = match result {
        Err(Error::InvalidArgument { field, rule }) if !field.is_empty() && !rule.is_empty() => {
            return Ok(());
        }
        Err(Error::FailedPrecondition(why)) if !why.is_empty() => return Ok(()),
        Err(e) => return Err(format!("an untyped refusal: {e:?}")),
        Ok(Applied::Unchanged) => return Ok(()),
        Ok(Applied::Changed(after)) => after,
    };
    if after.version != before.version + 1 || after.updated_at != now {
        return Err("a change must bump the version once and stamp now".into());
    }
    let fixed = |r: &InstructionRecord| {
        (
            r.instruction_id.clone(),
            r.notice_id.clone(),
            r.action,
            r.account.clone(),
            r.victim.clone(),
            r.sequence,
            r.created_at,
            r.answer_due_at,
            (r.references.clone(), r.parent.clone(), r.depth),
            (r.freeze.clone(), r.case_filing.clone(), r.renew_until),
        )
    };
    if fixed(before) != fixed(after) {
        return Err("a change touched what identifies the instruction or what was asked".into());
    }
    if before.is_final() {
        let outcome = |r: &InstructionRecord| {
            (
                r.state,
                r.ack.clone(),
                r.effective_until,
                r.hops.clone(),
                r.delivered_at,
                r.overdue_at,
            )
        };
        if outcome(before) != outcome(after) {
            return Err(format!(
                "a final {:?} instruction changed: {:?} -> {:?}",
                before.state,
                outcome(before),
                outcome(after)
            ));
        }
    }
    if !edge(before.action, before.state, after.state) {
        return Err(format!(
            "{:?} -> {:?} is not a transition of a {:?}",
            before.state, after.state, before.action
        ));
    }
    if !matches!(event, Event::Acknowledged(_)) && after.ack != before.ack {
        return Err("only an answer records an answer".into());
    }
    check_record(after, policy)
}

/// What a record must satisfy whatever happened to it.
pub fn check_record(rec: &InstructionRecord, policy: &Policy) -> Result<(), String> {
    let requested = rec.account.amount.get();
    let held = rec.held();
    let fail = |what: String| Err(format!("{}: {what}", rec.instruction_id));
    let Some(ack) = &rec.ack else {
        if !(rec.state.awaiting_answer() || rec.state == State::Released) {
            return fail(format!("{:?} without an answer", rec.state));
        }
        if rec.effective_until.is_some() || !rec.hops.is_empty() {
            return fail("a term or hops without an answer".into());
        }
        return Ok(());
    };
    if rec.state.awaiting_answer() {
        return fail(format!("{:?} with an answer recorded", rec.state));
    }
    let stop = rec.action == Action::StopPayment;
    let receive_only = rec
        .freeze
        .as_ref()
        .is_some_and(|f| f.mode == FreezeMode::ReceiveOnly);
    // The state the answer put the instruction in: later only LAPSED or RELEASED.
    let answered = match (&ack.outcome, rec.action) {
        (Outcome::Executed { .. }, Action::StopPayment) => State::Executed,
        (Outcome::Partial { .. }, Action::StopPayment) => State::Partial,
        (Outcome::Frozen { earlier, .. }, Action::Freeze) if !earlier.is_empty() => State::Queued,
        (Outcome::Frozen { not_frozen, .. }, Action::Freeze) if not_frozen.get() > 0 => {
            State::Partial
        }
        (Outcome::Frozen { .. }, Action::Freeze) => State::Executed,
        (Outcome::Done { .. }, a) if !a.holds_money() => State::Executed,
        (Outcome::Mismatch { .. }, a) if a.holds_money() => State::Mismatch,
        (Outcome::AccountNotFound { .. }, _) => State::AccountNotFound,
        (Outcome::Rejected { .. }, _) => State::Rejected,
        (outcome, action) => return fail(format!("{outcome:?} recorded on a {action:?}")),
    };
    let later = answered.holding() && matches!(rec.state, State::Lapsed | State::Released);
    if rec.state != answered && !later {
        return fail(format!("{:?} but answered {answered:?}", rec.state));
    }
    match &ack.outcome {
        Outcome::Executed { held, .. } if held.get() != requested => {
            return fail(format!("EXECUTED holds {held:?} of {requested}"));
        }
        Outcome::Partial { held, .. } if !(0 < held.get() && held.get() < requested) => {
            return fail(format!("PARTIAL holds {held:?} of {requested}"));
        }
        Outcome::Frozen {
            frozen,
            not_frozen,
            balance,
            available,
            ..
        } => {
            if !receive_only && frozen.get() + not_frozen.get() != requested {
                return fail(format!("froze {frozen:?} + {not_frozen:?} of {requested}"));
            }
            if frozen > balance || available > balance {
                return fail("froze or left available more than the balance".into());
            }
        }
        _ => {}
    }
    if held < 0 || (held > requested && !receive_only) || (held > 0 && !rec.action.holds_money()) {
        return fail(format!("holds {held} of {requested} fen"));
    }
    if let Some(t) = ack
        .outcome
        .onward()
        .iter()
        .find(|t| t.time < rec.victim.transfer_time)
    {
        return fail(format!("an onward transfer before the victim's: {t:?}"));
    }
    let Acknowledgement {
        received_at,
        late_by_ms,
        discrepancy_ms,
        ..
    } = ack;
    if *late_by_ms != (received_at.millis() - rec.answer_due_at.millis()).max(0) {
        return fail(format!("late by {late_by_ms} ms"));
    }
    let start = match ack.outcome.executed_at() {
        Some(at) if (at.millis() - received_at.millis()).abs() > policy.max_execution_skew_ms => {
            if *discrepancy_ms != at.millis() - received_at.millis() {
                return fail(format!("discrepancy {discrepancy_ms} ms"));
            }
            *received_at
        }
        Some(at) if *discrepancy_ms == 0 => at,
        None if *discrepancy_ms == 0 => *received_at,
        _ => return fail(format!("discrepancy {discrepancy_ms} ms within the skew")),
    };
    let holds = rec.action.holds_money() && answered.holding();
    match (rec.effective_until, holds, stop) {
        (None, false, _) => {}
        (Some(until), true, true) if until == start.plus_millis(policy.stop_term_ms) => {}
        (Some(until), true, false) => {
            let major = rec.freeze.as_ref().is_some_and(|f| f.major.is_some());
            if until < add_months(start, policy.freeze_term_months(major)) {
                return fail(format!("a freeze runs until {until:?}, short of its term"));
            }
        }
        (until, _, _) => return fail(format!("runs until {until:?} (holding: {holds})")),
    }
    let followed: i64 = rec.hops.iter().map(|h| h.followed).sum();
    if followed > (requested - held).max(0)
        || rec
            .hops
            .iter()
            .any(|h| h.followed < 0 || h.followed > h.transfer.amount.get())
        || rec
            .hops
            .iter()
            .any(|h| !ack.outcome.onward().contains(&h.transfer))
    {
        return fail(format!(
            "hops follow {followed} fen of {} not held, or not the answer's transfers",
            requested - held
        ));
    }
    Ok(())
}
