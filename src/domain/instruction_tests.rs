//! The instruction state machine, table-driven. Every expected result below is written out by
//! hand from the transition diagram in the module header and domain.md, never computed by the
//! code under test.

use std::fmt::Debug;

use super::*;
use crate::domain::ids::InstitutionCode;
use crate::domain::notice::{AccountKind, FreezeMode, MajorApproval};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Every record asks for this much, in fen.
const REQUESTED: i64 = 10_000;
/// 2026-03-10T00:00Z: the instruction is created.
const T0: i64 = 1_773_100_800_000;
/// The answer deadline: created + 5 minutes.
const DUE: i64 = T0 + 5 * MINUTE;
/// A stored answer was executed and received then.
const ANSWERED: i64 = T0 + 2 * MINUTE;
/// Events arrive then, unless a case says otherwise (before the deadline).
const NOW: i64 = T0 + 3 * MINUTE;
/// The version every built record starts at.
const VERSION: u32 = 3;

const ALL_ACTIONS: [Action; 5] = [
    Action::StopPayment,
    Action::Freeze,
    Action::RenewFreeze,
    Action::ReleaseStop,
    Action::ReleaseFreeze,
];

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn fen(v: i64) -> Fen {
    Fen::new_unchecked(v)
}

fn number(s: &str) -> AccountNumber {
    AccountNumber::parse(s).expect("a valid account number")
}

fn code(s: &str) -> InstitutionCode {
    InstitutionCode::parse(s).expect("a valid institution code")
}

fn holds_money(action: Action) -> bool {
    matches!(action, Action::StopPayment | Action::Freeze)
}

fn in_force(state: State) -> bool {
    matches!(state, State::Executed | State::Partial | State::Queued)
}

fn awaiting(state: State) -> bool {
    matches!(state, State::Pending | State::Delivered | State::Overdue)
}

/// The kinds of answer an institution can give, each with amounts that fit a 10,000 fen request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// EXECUTED, the whole amount held.
    StopAll,
    /// PARTIAL, 4,000 of 10,000 held.
    StopSome,
    /// FROZEN, the whole amount.
    FreezeAll,
    /// FROZEN, 6,000 frozen and 4,000 not (with a reason).
    FreezeSome,
    /// FROZEN behind an earlier freeze by another authority.
    FreezeQueued,
    Done,
    Mismatch,
    NotFound,
    Rejected,
}

const ALL_REPLIES: [Reply; 9] = [
    Reply::StopAll,
    Reply::StopSome,
    Reply::FreezeAll,
    Reply::FreezeSome,
    Reply::FreezeQueued,
    Reply::Done,
    Reply::Mismatch,
    Reply::NotFound,
    Reply::Rejected,
];

fn earlier_freeze() -> EarlierFreeze {
    EarlierFreeze {
        amount: fen(50_000),
        expires_at: at(T0 + 90 * DAY),
        authority: "PSB-BJ".into(),
    }
}

fn executed(held: i64, executed_at: Timestamp) -> Outcome {
    Outcome::Executed {
        held: fen(held),
        balance: fen(held),
        executed_at,
        onward: vec![],
    }
}

fn partial(held: i64, executed_at: Timestamp) -> Outcome {
    Outcome::Partial {
        held: fen(held),
        balance: fen(held),
        executed_at,
        onward: vec![],
    }
}

fn frozen(
    executed_at: Timestamp,
    amount: i64,
    not_frozen: i64,
    reason: &str,
    earlier: Vec<EarlierFreeze>,
) -> Outcome {
    Outcome::Frozen {
        frozen: fen(amount),
        balance: fen(amount + not_frozen),
        available: fen(0),
        not_frozen: fen(not_frozen),
        not_frozen_reason: reason.into(),
        earlier,
        executed_at,
        onward: vec![],
    }
}

/// An answer of kind `reply`. Answers that carry no time mention `at` in their text, so that
/// two answers given at different times always differ.
fn outcome(reply: Reply, at: Timestamp) -> Outcome {
    let note = format!("checked at {}", at.millis());
    match reply {
        Reply::StopAll => executed(REQUESTED, at),
        Reply::StopSome => partial(4_000, at),
        Reply::FreezeAll => frozen(at, REQUESTED, 0, "", vec![]),
        Reply::FreezeSome => frozen(at, 6_000, 4_000, "balance too low", vec![]),
        Reply::FreezeQueued => frozen(at, REQUESTED, 0, "", vec![earlier_freeze()]),
        Reply::Done => Outcome::Done { executed_at: at },
        Reply::Mismatch => Outcome::Mismatch {
            fields: vec![MismatchField::AccountName],
            detail: note,
        },
        Reply::NotFound => Outcome::AccountNotFound { detail: note },
        Reply::Rejected => Outcome::Rejected { reason: note },
    }
}

/// The answer a record in `state` was given.
fn stored_reply(action: Action, state: State) -> Reply {
    let (all, some, queued) = match action {
        Action::StopPayment => (Reply::StopAll, Reply::StopSome, Reply::StopSome),
        Action::Freeze => (Reply::FreezeAll, Reply::FreezeSome, Reply::FreezeQueued),
        Action::RenewFreeze | Action::ReleaseStop | Action::ReleaseFreeze => {
            (Reply::Done, Reply::Done, Reply::Done)
        }
    };
    match state {
        State::Partial => some,
        State::Queued => queued,
        State::Mismatch => Reply::Mismatch,
        State::AccountNotFound => Reply::NotFound,
        State::Rejected => Reply::Rejected,
        State::Pending
        | State::Delivered
        | State::Overdue
        | State::Executed
        | State::Lapsed
        | State::Released => all,
    }
}

/// The end of the term of a stop or freeze that started at `start`: 48 hours for a stop, six
/// calendar months for a freeze.
fn term_end(action: Action, start: Timestamp) -> Timestamp {
    match action {
        Action::Freeze => add_months(start, 6),
        Action::StopPayment | Action::RenewFreeze | Action::ReleaseStop | Action::ReleaseFreeze => {
            start.plus_millis(48 * HOUR)
        }
    }
}

/// A record of `action` in `state`, consistent with how it got there: 10,000 fen requested,
/// answer due 5 minutes after creation; answered states carry their answer (given at ANSWERED);
/// stops and freezes that were in force carry their expiry; renewals and releases reference the
/// instruction they act on. An OVERDUE record was never delivered.
fn record(action: Action, state: State) -> InstructionRecord {
    let answered = !awaiting(state);
    let was_in_force = holds_money(action)
        && (in_force(state) || matches!(state, State::Lapsed | State::Released));
    let freezes = matches!(action, Action::Freeze | Action::RenewFreeze);
    InstructionRecord {
        instruction_id: "ins-1".into(),
        notice_id: "ntc-1".into(),
        case_reference: "CASE-2026-0001".into(),
        police_agency: "PSB-SH".into(),
        action,
        account: SuspectAccount {
            institution_code: code("ICBC"),
            account_number: number("622202123456"),
            account_name: "Zhang San".into(),
            account_kind: AccountKind::Bank,
            amount: fen(REQUESTED),
            follows: None,
        },
        victim: VictimTransfer {
            institution_code: code("CMB"),
            account_number: number("621483000001"),
            account_name: "Li Si".into(),
            currency: "CNY".into(),
            amount: fen(REQUESTED),
            transfer_time: at(T0 - HOUR),
            transaction_reference: "TX-0001".into(),
        },
        state,
        sequence: 7,
        created_at: at(T0),
        answer_due_at: at(DUE),
        delivered_at: (!matches!(state, State::Pending | State::Overdue)).then(|| at(T0 + 1_000)),
        ack: answered.then(|| Acknowledgement {
            outcome: outcome(stored_reply(action, state), at(ANSWERED)),
            received_at: at(ANSWERED),
            late_by_ms: 0,
            discrepancy_ms: 0,
        }),
        updated_at: at(ANSWERED),
        version: VERSION,
        references: (!holds_money(action)).then(|| "ins-0".to_owned()),
        parent: None,
        depth: 1,
        follow_depth: 0,
        freeze: freezes.then_some(FreezeTerms {
            mode: FreezeMode::AmountLimited,
            major: None,
        }),
        case_filing: freezes.then(|| CaseFiling {
            case_number: "LA-2026-0001".into(),
            filed_at: at(T0 - DAY),
        }),
        effective_until: was_in_force.then(|| term_end(action, at(ANSWERED))),
        overdue_at: (state == State::Overdue).then(|| at(DUE)),
        hops: vec![],
        renew_until: (action == Action::RenewFreeze).then(|| add_months(at(T0 + 170 * DAY), 6)),
        pending_follow_up: None,
    }
}

fn major_approval() -> MajorApproval {
    MajorApproval {
        reference: "MAJ-2026-01".into(),
        approved_by: "PSB-SH-CITY".into(),
    }
}

fn sample_hop() -> Hop {
    Hop {
        transfer: OnwardTransfer {
            institution_code: "CMB".into(),
            account_number: number("621483000002"),
            account_name: "Wang Wu".into(),
            amount: fen(3_000),
            time: at(T0 + MINUTE),
            reference: "TX-0002".into(),
        },
        result: HopResult::Followed,
        instruction_id: Some("ins-2".into()),
        followed: 3_000,
    }
}

/// What applying an event should do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Changed, now in this state.
    To(State),
    /// Unchanged.
    Same,
    /// Error::FailedPrecondition.
    Refused,
    /// Error::InvalidArgument naming this field.
    Invalid(String),
    /// Any other error (never expected).
    Other(String),
}

fn invalid(field: &str) -> Expect {
    Expect::Invalid(field.into())
}

fn observe(result: &Result<Applied, Error>) -> Expect {
    match result {
        Ok(Applied::Changed(next)) => Expect::To(next.state),
        Ok(Applied::Unchanged) => Expect::Same,
        Err(Error::FailedPrecondition(_)) => Expect::Refused,
        Err(Error::InvalidArgument { field, .. }) => Expect::Invalid(field.clone()),
        Err(other) => Expect::Other(format!("{other:?}")),
    }
}

/// The changed record, or a panic naming what happened instead.
fn changed(result: Result<Applied, Error>) -> InstructionRecord {
    match result {
        Ok(Applied::Changed(next)) => *next,
        other => panic!("expected a change, got {other:?}"),
    }
}

/// The message of a FailedPrecondition, or a panic.
fn refusal<T: Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::FailedPrecondition(message)) => message,
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
}

/// The field and rule of an InvalidArgument, or a panic.
fn invalid_argument<T: Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::InvalidArgument { field, rule }) => (field, rule),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// Applies `event` at `now` under the default policy.
fn on(rec: &InstructionRecord, event: Event, now: i64) -> Result<Applied, Error> {
    apply(rec, &event, at(now), &Policy::default())
}

fn answer(rec: &InstructionRecord, outcome: Outcome, now: i64) -> Result<Applied, Error> {
    on(rec, Event::Acknowledged(outcome), now)
}

// ---------------------------------------------------------------------------------------------
// The whole table: every action x state x event.

/// The events of the table. Timer events come before, at and after their instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delivered,
    Answer(Reply),
    DeadlineBefore,
    DeadlineAt,
    DeadlineAfter,
    TermBefore,
    TermAt,
    TermAfter,
    Released,
    Renewed,
    FollowUpOpened,
    FollowUpClosed,
    HopsRecorded,
}

fn all_kinds() -> Vec<Kind> {
    let mut kinds = vec![Kind::Delivered];
    kinds.extend(ALL_REPLIES.map(Kind::Answer));
    kinds.extend([
        Kind::DeadlineBefore,
        Kind::DeadlineAt,
        Kind::DeadlineAfter,
        Kind::TermBefore,
        Kind::TermAt,
        Kind::TermAfter,
        Kind::Released,
        Kind::Renewed,
        Kind::FollowUpOpened,
        Kind::FollowUpClosed,
        Kind::HopsRecorded,
    ]);
    kinds
}

/// The event of `kind` for `rec`, and when it happens.
fn stimulus(kind: Kind, rec: &InstructionRecord) -> (Event, Timestamp) {
    let term = rec.effective_until.map_or(T0 + 2 * DAY, Timestamp::millis);
    match kind {
        Kind::Delivered => (Event::Delivered, at(NOW)),
        Kind::Answer(reply) => (Event::Acknowledged(outcome(reply, at(NOW))), at(NOW)),
        Kind::DeadlineBefore => (Event::AnswerDeadline, at(DUE - 1)),
        Kind::DeadlineAt => (Event::AnswerDeadline, at(DUE)),
        Kind::DeadlineAfter => (Event::AnswerDeadline, at(DUE + MINUTE)),
        Kind::TermBefore => (Event::TermEnded, at(term - 1)),
        Kind::TermAt => (Event::TermEnded, at(term)),
        Kind::TermAfter => (Event::TermEnded, at(term + HOUR)),
        Kind::Released => (Event::Released, at(NOW)),
        Kind::Renewed => (
            Event::Renewed {
                until: at(term + 30 * DAY),
            },
            at(NOW),
        ),
        Kind::FollowUpOpened => (Event::FollowUpOpened("ins-9".into()), at(NOW)),
        Kind::FollowUpClosed => (Event::FollowUpClosed, at(NOW)),
        Kind::HopsRecorded => (Event::HopsRecorded(vec![sample_hop()]), at(NOW)),
    }
}

/// The state a fitting answer puts an awaiting instruction in; None when the answer does not
/// fit the action.
fn answer_state(action: Action, reply: Reply) -> Option<State> {
    use Action::*;
    match (action, reply) {
        (StopPayment, Reply::StopAll) => Some(State::Executed),
        (StopPayment, Reply::StopSome) => Some(State::Partial),
        (Freeze, Reply::FreezeAll) => Some(State::Executed),
        (Freeze, Reply::FreezeSome) => Some(State::Partial),
        (Freeze, Reply::FreezeQueued) => Some(State::Queued),
        (RenewFreeze | ReleaseStop | ReleaseFreeze, Reply::Done) => Some(State::Executed),
        (StopPayment | Freeze, Reply::Mismatch) => Some(State::Mismatch),
        (_, Reply::NotFound) => Some(State::AccountNotFound),
        (_, Reply::Rejected) => Some(State::Rejected),
        (StopPayment, Reply::FreezeAll | Reply::FreezeSome | Reply::FreezeQueued | Reply::Done)
        | (Freeze, Reply::StopAll | Reply::StopSome | Reply::Done)
        | (
            RenewFreeze | ReleaseStop | ReleaseFreeze,
            Reply::StopAll
            | Reply::StopSome
            | Reply::FreezeAll
            | Reply::FreezeSome
            | Reply::FreezeQueued
            | Reply::Mismatch,
        ) => None,
    }
}

/// The expected result of `kind` on `record(action, state)` (with a follow-up pending if
/// `pending`).
fn expected(action: Action, state: State, pending: bool, kind: Kind) -> Expect {
    use Expect::{Refused, Same, To};
    use State::*;
    match kind {
        // The first delivery: PENDING moves on; OVERDUE (never delivered here) only records it.
        Kind::Delivered => match state {
            Pending => To(Delivered),
            Overdue => To(Overdue),
            Delivered | Executed | Partial | Queued | Mismatch | AccountNotFound | Rejected
            | Lapsed | Released => Same,
        },
        Kind::Answer(reply) if awaiting(state) => {
            answer_state(action, reply).map_or_else(|| invalid("outcome"), To)
        }
        // Every answer of the table differs from the stored one: a second, different answer.
        Kind::Answer(_) => Refused,
        Kind::DeadlineAt | Kind::DeadlineAfter if matches!(state, Pending | Delivered) => {
            To(Overdue)
        }
        Kind::DeadlineBefore | Kind::DeadlineAt | Kind::DeadlineAfter => Same,
        Kind::TermAt | Kind::TermAfter if holds_money(action) && in_force(state) => To(Lapsed),
        Kind::TermBefore | Kind::TermAt | Kind::TermAfter => Same,
        Kind::Released if holds_money(action) && (awaiting(state) || in_force(state)) => {
            To(Released)
        }
        // Carried out where it no longer applies: only the follow-up is over.
        Kind::Released | Kind::Renewed if pending => To(state),
        Kind::Released => Same,
        Kind::Renewed if action == Action::Freeze && in_force(state) => To(state),
        Kind::Renewed => Same,
        // One renewal or release at a time.
        Kind::FollowUpOpened if pending => Refused,
        Kind::FollowUpOpened => To(state),
        Kind::FollowUpClosed if pending => To(state),
        Kind::FollowUpClosed => Same,
        // Only a stop or freeze in force holds money that can have moved on.
        Kind::HopsRecorded if holds_money(action) && in_force(state) => To(state),
        Kind::HopsRecorded => Refused,
    }
}

/// A change bumps the version by one, stamps `now`, and touches only what its event is about.
fn check_change(
    before: &InstructionRecord,
    after: &InstructionRecord,
    event: &Event,
    now: Timestamp,
) -> Result<(), String> {
    if after.version != before.version + 1 {
        return Err(format!("version {} -> {}", before.version, after.version));
    }
    if after.updated_at != now {
        return Err(format!(
            "updated_at {:?}, not now {now:?}",
            after.updated_at
        ));
    }
    let mut rest = after.clone();
    rest.version = before.version;
    rest.updated_at = before.updated_at;
    rest.state = before.state;
    let ok = match event {
        Event::Delivered => {
            rest.delivered_at = before.delivered_at;
            after.delivered_at == Some(now)
        }
        Event::Acknowledged(outcome) => {
            rest.ack.clone_from(&before.ack);
            rest.effective_until = before.effective_until;
            let ack = after.ack.as_ref();
            ack.is_some_and(|a| a.outcome == *outcome && a.received_at == now)
                && after.effective_until.is_some()
                    == (holds_money(after.action) && in_force(after.state))
        }
        Event::AnswerDeadline => {
            rest.overdue_at = before.overdue_at;
            after.overdue_at == Some(now)
        }
        Event::TermEnded | Event::Released | Event::FollowUpClosed => {
            rest.pending_follow_up.clone_from(&before.pending_follow_up);
            after.pending_follow_up.is_none()
        }
        Event::Renewed { until } => {
            rest.pending_follow_up.clone_from(&before.pending_follow_up);
            rest.effective_until = before.effective_until;
            let renewed = before.action == Action::Freeze && in_force(before.state);
            after.pending_follow_up.is_none()
                && after.effective_until
                    == if renewed {
                        Some(*until)
                    } else {
                        before.effective_until
                    }
        }
        Event::FollowUpOpened(id) => {
            rest.pending_follow_up.clone_from(&before.pending_follow_up);
            after.pending_follow_up.as_ref() == Some(id)
        }
        Event::HopsRecorded(hops) => {
            rest.hops.clone_from(&before.hops);
            after.hops == *hops
        }
    };
    if !ok {
        return Err(format!("the event's own fields are wrong: {after:?}"));
    }
    if rest != *before {
        return Err(format!("fields the event is not about changed: {rest:?}"));
    }
    Ok(())
}

#[test]
fn every_event_in_every_state_of_every_action() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    let mut cases = 0;
    for action in ALL_ACTIONS {
        for state in ALL_STATES {
            for pending in [false, true] {
                let mut rec = record(action, state);
                if pending {
                    rec.pending_follow_up = Some("ins-8".into());
                }
                for kind in all_kinds() {
                    cases += 1;
                    let (event, now) = stimulus(kind, &rec);
                    let result = apply(&rec, &event, now, &policy);
                    let want = expected(action, state, pending, kind);
                    let got = observe(&result);
                    let case =
                        format!("{action:?} in {state:?} (follow-up pending: {pending}), {kind:?}");
                    let why = match &result {
                        _ if got != want => Some(format!("expected {want:?}, got {got:?}")),
                        Ok(Applied::Changed(next)) => check_change(&rec, next, &event, now).err(),
                        _ => None,
                    };
                    failures.extend(why.map(|why| format!("{case}: {why}")));
                }
            }
        }
    }
    assert_eq!(cases, 5 * 11 * 2 * 21);
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Delivery and the answer deadline.

#[test]
fn delivery_is_recorded_once() {
    let delivered = changed(on(
        &record(Action::StopPayment, State::Pending),
        Event::Delivered,
        NOW,
    ));
    assert_eq!(delivered.state, State::Delivered);
    assert_eq!(delivered.delivered_at, Some(at(NOW)));
    assert_eq!(
        on(&delivered, Event::Delivered, NOW + MINUTE).unwrap(),
        Applied::Unchanged
    );

    // Overdue, then delivered (the institution reconnected): recorded once, still OVERDUE.
    let late = changed(on(
        &record(Action::StopPayment, State::Overdue),
        Event::Delivered,
        DUE + HOUR,
    ));
    assert_eq!(
        (late.state, late.delivered_at),
        (State::Overdue, Some(at(DUE + HOUR)))
    );
    assert_eq!(
        on(&late, Event::Delivered, DUE + 2 * HOUR).unwrap(),
        Applied::Unchanged
    );
}

#[test]
fn the_deadline_makes_an_unanswered_instruction_overdue_once() {
    let overdue = changed(on(
        &record(Action::Freeze, State::Delivered),
        Event::AnswerDeadline,
        DUE,
    ));
    assert_eq!(
        (overdue.state, overdue.overdue_at),
        (State::Overdue, Some(at(DUE)))
    );
    assert_eq!(
        on(&overdue, Event::AnswerDeadline, DUE + HOUR).unwrap(),
        Applied::Unchanged
    );
}

// ---------------------------------------------------------------------------------------------
// Answers.

#[test]
fn lateness_is_measured_from_the_answer_deadline() {
    let cases = [
        (State::Pending, DUE - MINUTE, 0),
        (State::Delivered, DUE - 1, 0),
        (State::Delivered, DUE, 0),
        (State::Delivered, DUE + 1, 1),
        (State::Pending, DUE + 2 * MINUTE, 2 * MINUTE),
        (State::Overdue, DUE + 7 * MINUTE, 7 * MINUTE),
        (State::Overdue, DUE + 3 * HOUR, 3 * HOUR),
    ];
    for (state, now, late_by_ms) in cases {
        let next = changed(answer(
            &record(Action::StopPayment, state),
            executed(REQUESTED, at(now)),
            now,
        ));
        let ack = next.ack.expect("the answer is stored");
        assert_eq!(next.state, State::Executed, "{state:?} answered at {now}");
        assert_eq!(ack.late_by_ms, late_by_ms, "{state:?} answered at {now}");
        assert_eq!(ack.received_at, at(now));
        assert_eq!(ack.discrepancy_ms, 0);
    }
}

#[test]
fn a_stop_runs_48_hours_from_its_execution_time_unless_that_time_is_implausible() {
    let skew = Policy::default().max_execution_skew_ms;
    assert_eq!(skew, 5 * MINUTE);
    // (reported execution time relative to the hub's now, term start, discrepancy_ms)
    let cases = [
        (0, NOW, 0),
        (-MINUTE, NOW - MINUTE, 0),
        (-skew, NOW - skew, 0),
        (skew, NOW + skew, 0),
        (-skew - 1, NOW, -skew - 1),
        (skew + 1, NOW, skew + 1),
        (10 * MINUTE, NOW, 10 * MINUTE),
        (-2 * HOUR, NOW, -2 * HOUR),
        (-3 * DAY, NOW, -3 * DAY),
    ];
    for (offset, start, discrepancy_ms) in cases {
        for reported in [
            executed(REQUESTED, at(NOW + offset)),
            partial(1, at(NOW + offset)),
        ] {
            let next = changed(answer(
                &record(Action::StopPayment, State::Delivered),
                reported,
                NOW,
            ));
            let ack = next.ack.as_ref().expect("the answer is stored");
            assert_eq!(
                ack.discrepancy_ms, discrepancy_ms,
                "executed {offset} ms from now"
            );
            assert_eq!(
                next.effective_until,
                Some(at(start + 48 * HOUR)),
                "executed {offset} ms from now"
            );
            assert!(!next.is_final());
        }
    }
}

#[test]
fn a_freeze_runs_six_calendar_months_or_twelve_for_a_major_case() {
    // 2026-08-31T01:00Z, +6 months = 2027-02-28T01:00Z, +12 months = 2027-08-31T01:00Z.
    let (executed_at, six, twelve) = (1_788_138_000_000, 1_803_776_400_000, 1_819_674_000_000);
    for (major, until) in [(false, six), (true, twelve)] {
        let mut rec = record(Action::Freeze, State::Delivered);
        if major {
            rec.freeze = Some(FreezeTerms {
                mode: FreezeMode::ReceiveOnly,
                major: Some(major_approval()),
            });
        }
        for reply in [Reply::FreezeAll, Reply::FreezeSome, Reply::FreezeQueued] {
            let next = changed(answer(
                &rec,
                outcome(reply, at(executed_at)),
                executed_at + MINUTE,
            ));
            assert_eq!(
                next.effective_until,
                Some(at(until)),
                "major {major}, {reply:?}"
            );
            assert_eq!(next.ack.map(|a| a.discrepancy_ms), Some(0));
        }
        // An implausible execution time: the term runs from the hub's receipt instead.
        let received = T0 + 10 * MINUTE;
        let months = if major { 12 } else { 6 };
        let next = changed(answer(
            &rec,
            outcome(Reply::FreezeAll, at(executed_at)),
            received,
        ));
        assert_eq!(
            next.effective_until,
            Some(add_months(at(received), months)),
            "major {major}"
        );
        assert_eq!(
            next.ack.map(|a| a.discrepancy_ms),
            Some(executed_at - received)
        );
    }
}

#[test]
fn a_renewal_or_release_carried_out_is_final_and_has_no_term() {
    for action in [
        Action::RenewFreeze,
        Action::ReleaseStop,
        Action::ReleaseFreeze,
    ] {
        for state in [State::Pending, State::Delivered, State::Overdue] {
            let next = changed(answer(
                &record(action, state),
                Outcome::Done {
                    executed_at: at(NOW),
                },
                NOW,
            ));
            assert_eq!(next.state, State::Executed, "{action:?} from {state:?}");
            assert!(next.is_final(), "{action:?} from {state:?}");
            assert_eq!(next.effective_until, None, "{action:?} from {state:?}");
        }
    }
}

#[test]
fn answers_that_hold_nothing_are_final_and_have_no_term() {
    for action in ALL_ACTIONS {
        for reply in [Reply::Mismatch, Reply::NotFound, Reply::Rejected] {
            let Ok(Applied::Changed(next)) = answer(
                &record(action, State::Delivered),
                outcome(reply, at(NOW)),
                NOW,
            ) else {
                continue; // a mismatch does not answer a renewal or release: see the table
            };
            assert!(next.is_final(), "{action:?} answered {reply:?}");
            assert_eq!(next.effective_until, None, "{action:?} answered {reply:?}");
            assert_eq!(next.held(), 0);
        }
    }
}

#[test]
fn amounts_in_an_answer_must_fit_the_request() {
    use State::{Executed, Partial, Queued};
    const NO_REASON: &str = "frozen.not_frozen_reason";
    const TOO_MUCH: &str = "frozen.amount_frozen_fen";
    let (t, r, why, to) = (at(NOW), REQUESTED, "balance too low", Expect::To);
    let queue = || vec![earlier_freeze()];
    // A stop: EXECUTED holds exactly the amount requested, PARTIAL less.
    let stops = [
        (executed(r, t), to(Executed)),
        (executed(r - 1, t), invalid("executed.amount_held_fen")),
        (executed(r + 1, t), invalid("executed.amount_held_fen")),
        (partial(r - 1, t), to(Partial)),
        (partial(0, t), to(Partial)),
        (partial(r, t), invalid("partial.amount_held_fen")),
        (partial(r + 1, t), invalid("partial.amount_held_fen")),
    ];
    // An amount-limited freeze: frozen + not frozen is the amount requested; earlier freezes
    // queue it; anything not frozen makes it partial and needs a reason; nothing frozen and
    // nothing to queue behind is not a freeze at all (REJECTED is the answer for that).
    const SUM: &str = "frozen.amount_not_frozen_fen";
    let mut overdrawn = frozen(t, r, 0, "", vec![]);
    if let Outcome::Frozen { balance, .. } = &mut overdrawn {
        *balance = Fen::new_unchecked(r - 1);
    }
    let freezes = [
        (frozen(t, r, 0, "", vec![]), to(Executed)),
        (frozen(t, 6_000, 4_000, why, vec![]), to(Partial)),
        (frozen(t, r - 1, 1, why, vec![]), to(Partial)),
        (frozen(t, 6_000, 0, "", vec![]), invalid(SUM)),
        (frozen(t, 0, r, why, vec![]), invalid(TOO_MUCH)),
        (frozen(t, r, 0, "", queue()), to(Queued)),
        (frozen(t, 4_000, 6_000, why, queue()), to(Queued)),
        (frozen(t, 0, r, why, queue()), to(Queued)),
        (frozen(t, 6_000, 4_000, "", vec![]), invalid(NO_REASON)),
        (frozen(t, r - 1, 1, "", vec![]), invalid(NO_REASON)),
        (frozen(t, 6_000, 4_000, "", queue()), invalid(NO_REASON)),
        (frozen(t, r + 1, 0, "", vec![]), invalid(SUM)),
        (frozen(t, r + 1, 0, "", queue()), invalid(SUM)),
        (overdrawn, invalid("frozen.balance_fen")),
    ];
    let cases = (stops.into_iter().map(|(o, e)| (Action::StopPayment, o, e)))
        .chain(freezes.into_iter().map(|(o, e)| (Action::Freeze, o, e)));
    for (action, reported, want) in cases {
        for state in [State::Pending, State::Delivered, State::Overdue] {
            let got = observe(&answer(&record(action, state), reported.clone(), NOW));
            assert_eq!(got, want, "{action:?} in {state:?} answered {reported:?}");
        }
    }
}

#[test]
fn an_answer_of_the_wrong_kind_names_the_outcome_and_what_was_expected() {
    let cases = [
        (Action::StopPayment, Reply::FreezeAll, "frozen"),
        (Action::StopPayment, Reply::Done, "done"),
        (Action::Freeze, Reply::StopAll, "executed"),
        (Action::Freeze, Reply::StopSome, "partial"),
        (Action::Freeze, Reply::Done, "done"),
        (Action::ReleaseStop, Reply::Mismatch, "mismatch"),
        (Action::ReleaseFreeze, Reply::StopAll, "executed"),
        (Action::RenewFreeze, Reply::FreezeAll, "frozen"),
    ];
    for (action, reply, name) in cases {
        let (field, rule) = invalid_argument(answer(
            &record(action, State::Delivered),
            outcome(reply, at(NOW)),
            NOW,
        ));
        assert_eq!(field, "outcome", "{action:?} answered {reply:?}");
        assert!(
            rule.starts_with(name) && rule.contains("expected"),
            "{action:?} answered {reply:?}: {rule}"
        );
    }
}

#[test]
fn the_same_answer_again_changes_nothing_and_a_different_one_is_refused() {
    for action in ALL_ACTIONS {
        for reply in ALL_REPLIES {
            let rec = record(action, State::Delivered);
            let given = outcome(reply, at(NOW));
            let Ok(Applied::Changed(answered)) = answer(&rec, given.clone(), NOW) else {
                continue;
            };
            // A retry, even much later, even after the deadline.
            assert_eq!(
                answer(&answered, given.clone(), DUE + HOUR).unwrap(),
                Applied::Unchanged,
                "{action:?} {reply:?}"
            );
            // Any other answer: a different kind, or the same kind with other details.
            for other in ALL_REPLIES {
                let different = outcome(other, at(NOW + 1));
                assert_eq!(
                    observe(&answer(&answered, different, NOW + MINUTE)),
                    Expect::Refused,
                    "{action:?} {reply:?} then {other:?}"
                );
            }
            // Still refused once the instruction lapsed or was released.
            for ended in [Event::TermEnded, Event::Released] {
                let Ok(Applied::Changed(gone)) = on(&answered, ended, T0 + 400 * DAY) else {
                    continue;
                };
                assert_eq!(
                    answer(&gone, given.clone(), T0 + 401 * DAY).unwrap(),
                    Applied::Unchanged
                );
                assert_eq!(
                    observe(&answer(&gone, outcome(reply, at(NOW + 1)), NOW)),
                    Expect::Refused
                );
            }
        }
    }
}

#[test]
fn an_answer_to_an_instruction_released_before_it_was_answered_is_refused() {
    let released = changed(on(
        &record(Action::StopPayment, State::Delivered),
        Event::Released,
        NOW,
    ));
    assert_eq!(released.state, State::Released);
    let message = refusal(answer(
        &released,
        executed(REQUESTED, at(NOW)),
        NOW + MINUTE,
    ));
    assert!(message.contains("ins-1"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// A whole life, step by step.

/// Applies `event` at `now`, checks the new state, version and stamp, and keeps the result.
fn step(rec: &mut InstructionRecord, event: Event, now: i64, state: State) {
    let next = changed(apply(rec, &event, at(now), &Policy::default()));
    let want = (state, rec.version + 1, at(now));
    assert_eq!(
        (next.state, next.version, next.updated_at),
        want,
        "after {event:?}"
    );
    *rec = next;
}

#[test]
fn a_freeze_from_creation_to_lapse() {
    let policy = Policy::default();
    let mut rec = record(Action::Freeze, State::Pending);
    step(&mut rec, Event::Delivered, T0 + 1_000, State::Delivered);
    step(&mut rec, Event::AnswerDeadline, DUE, State::Overdue);
    let answer = Event::Acknowledged(outcome(Reply::FreezeAll, at(DUE + MINUTE)));
    step(&mut rec, answer, DUE + MINUTE, State::Executed);
    assert_eq!(rec.version, VERSION + 3);
    assert_eq!(rec.ack.as_ref().map(|a| a.late_by_ms), Some(MINUTE));
    let first_expiry = rec
        .effective_until
        .expect("a freeze in force has an expiry");
    assert_eq!(first_expiry, add_months(at(DUE + MINUTE), 6));

    let asked = first_expiry.millis() - 20 * DAY;
    let until =
        check_renewal(&rec, None, at(asked), &policy).expect("renewable 20 days before expiry");
    step(
        &mut rec,
        Event::FollowUpOpened("ins-2".into()),
        asked,
        State::Executed,
    );
    refusal(check_renewal(&rec, None, at(asked), &policy));
    refusal(check_release(&rec));
    step(
        &mut rec,
        Event::Renewed { until },
        asked + HOUR,
        State::Executed,
    );
    assert_eq!(
        (rec.effective_until, rec.pending_follow_up.as_ref()),
        (Some(until), None)
    );

    // The old expiry's timer is no longer relevant.
    assert_eq!(
        on(&rec, Event::TermEnded, first_expiry.millis()).unwrap(),
        Applied::Unchanged
    );
    step(&mut rec, Event::TermEnded, until.millis(), State::Lapsed);
    assert_eq!(rec.version, VERSION + 6);
    assert!(rec.is_final());
    refusal(check_release(&rec));
}

// ---------------------------------------------------------------------------------------------
// State properties.

/// (state, awaiting an answer, in force, final for a stop or freeze, final for a renewal or
/// release)
const PROPERTIES: [(State, bool, bool, bool, bool); 11] = [
    (State::Pending, true, false, false, false),
    (State::Delivered, true, false, false, false),
    (State::Overdue, true, false, false, false),
    (State::Executed, false, true, false, true),
    (State::Partial, false, true, false, true),
    (State::Queued, false, true, false, true),
    (State::Mismatch, false, false, true, true),
    (State::AccountNotFound, false, false, true, true),
    (State::Rejected, false, false, true, true),
    (State::Lapsed, false, false, true, true),
    (State::Released, false, false, true, true),
];

#[test]
fn state_properties_per_state_and_action() {
    assert_eq!(PROPERTIES.map(|p| p.0), ALL_STATES);
    for (state, awaiting, holding, final_hold, final_follow_up) in PROPERTIES {
        assert_eq!(state.awaiting_answer(), awaiting, "{state:?}");
        assert_eq!(state.holding(), holding, "{state:?}");
        for action in ALL_ACTIONS {
            let want = if holds_money(action) {
                final_hold
            } else {
                final_follow_up
            };
            assert_eq!(state.is_final(action), want, "{state:?} {action:?}");
            assert_eq!(
                record(action, state).is_final(),
                want,
                "{state:?} {action:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Releases.

#[test]
fn only_a_stop_or_freeze_not_yet_ended_can_be_released() {
    for action in ALL_ACTIONS {
        for state in ALL_STATES {
            let rec = record(action, state);
            if holds_money(action) && (awaiting(state) || in_force(state)) {
                assert!(check_release(&rec).is_ok(), "{action:?} in {state:?}");
            } else {
                let message = refusal(check_release(&rec));
                assert!(
                    message.contains("ins-1"),
                    "{action:?} in {state:?}: {message}"
                );
            }
        }
    }
}

#[test]
fn no_release_while_a_follow_up_awaits_its_answer() {
    for action in [Action::StopPayment, Action::Freeze] {
        let mut rec = record(action, State::Executed);
        rec.pending_follow_up = Some("ins-5".into());
        let message = refusal(check_release(&rec));
        assert!(message.contains("ins-5"), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Renewals.

fn freeze_in_force(major: bool) -> (InstructionRecord, Timestamp) {
    let mut rec = record(Action::Freeze, State::Executed);
    if major {
        rec.freeze = Some(FreezeTerms {
            mode: FreezeMode::AmountLimited,
            major: Some(major_approval()),
        });
    }
    let expiry = rec.effective_until.expect("in force");
    (rec, expiry)
}

#[test]
fn only_a_freeze_in_force_can_be_renewed() {
    let policy = Policy::default();
    for action in ALL_ACTIONS {
        for state in ALL_STATES {
            let rec = record(action, state);
            let now = at(add_months(at(ANSWERED), 6).millis() - 11 * DAY);
            let result = check_renewal(&rec, None, now, &policy);
            if action == Action::Freeze && in_force(state) {
                assert!(result.is_ok(), "{action:?} in {state:?}: {result:?}");
            } else {
                refusal(result);
            }
        }
    }
    // In force but without an expiry (never happens; refused rather than guessed).
    let mut rec = record(Action::Freeze, State::Executed);
    rec.effective_until = None;
    refusal(check_renewal(&rec, None, at(NOW), &policy));
}

#[test]
fn a_renewal_must_arrive_at_least_ten_days_before_expiry() {
    let policy = Policy::default();
    let (rec, expiry) = freeze_in_force(false);
    let e = expiry.millis();
    // (now, accepted, what a refusal mentions)
    let cases = [
        (NOW, true, ""),
        (e - 60 * DAY, true, ""),
        (e - 11 * DAY, true, ""),
        (e - 10 * DAY, true, ""),
        (e - 10 * DAY + 1, false, "at least 10 days"),
        (e - 5 * DAY, false, "at least 10 days"),
        (e - 1, false, "at least 10 days"),
        (e, false, "expired"),
        (e + DAY, false, "expired"),
    ];
    for (now, accepted, mention) in cases {
        let result = check_renewal(&rec, None, at(now), &policy);
        if accepted {
            assert_eq!(result.unwrap(), add_months(expiry, 6), "at {now}");
        } else {
            let message = refusal(result);
            assert!(message.contains(mention), "at {now}: {message}");
        }
    }
}

#[test]
fn a_renewal_extends_by_at_most_one_term() {
    let policy = Policy::default();
    for (major, months) in [(false, 6), (true, 12)] {
        let (rec, expiry) = freeze_in_force(major);
        let now = at(expiry.millis() - 11 * DAY);
        let longest = add_months(expiry, months);
        assert_eq!(
            check_renewal(&rec, None, now, &policy).unwrap(),
            longest,
            "major {major}"
        );
        let cases = [
            (expiry.plus_millis(1), true),
            (expiry.plus_millis(30 * DAY), true),
            (longest, true),
            (expiry, false),
            (expiry.plus_millis(-DAY), false),
            (now, false),
            (longest.plus_millis(1), false),
            (add_months(expiry, months + 6), false),
        ];
        for (until, accepted) in cases {
            let result = check_renewal(&rec, Some(until), now, &policy);
            if accepted {
                assert_eq!(result.unwrap(), until, "major {major}, until {until:?}");
            } else {
                let (field, _) = invalid_argument(result);
                assert_eq!(field, "renew_until", "major {major}, until {until:?}");
            }
        }
    }
}

#[test]
fn no_renewal_while_a_follow_up_awaits_its_answer() {
    let (mut rec, expiry) = freeze_in_force(false);
    rec.pending_follow_up = Some("ins-6".into());
    let message = refusal(check_renewal(
        &rec,
        None,
        at(expiry.millis() - 30 * DAY),
        &Policy::default(),
    ));
    assert!(message.contains("ins-6"), "{message}");
}
