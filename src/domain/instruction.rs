//! The instruction state machine: `apply(record, event, now)` gives the next record or a typed
//! refusal. Every state change of an instruction in the hub goes through here.
//!
//! ```text
//!   PENDING --delivered--> DELIVERED
//!   PENDING | DELIVERED --acknowledged(outcome)--> EXECUTED | PARTIAL | MISMATCH
//!                                                  | ACCOUNT_NOT_FOUND | REJECTED   (final)
//! ```
//! A repeated delivery or an identical acknowledgement is a no-op; a different acknowledgement
//! of an answered instruction is refused.

use serde::{Deserialize, Serialize};

use super::ids::{Fen, Timestamp};
use super::notice::{Action, SuspectAccount, VictimTransfer};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    Pending,
    Delivered,
    Executed,
    Partial,
    Mismatch,
    AccountNotFound,
    Rejected,
}

impl State {
    /// Answered: nothing more will happen to the instruction.
    pub fn is_final(self) -> bool {
        match self {
            State::Pending | State::Delivered => false,
            State::Executed
            | State::Partial
            | State::Mismatch
            | State::AccountNotFound
            | State::Rejected => true,
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

/// The institution's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Executed {
        held: Fen,
        balance: Fen,
        executed_at: Timestamp,
    },
    Partial {
        held: Fen,
        balance: Fen,
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
    fn state(&self) -> State {
        match self {
            Outcome::Executed { .. } => State::Executed,
            Outcome::Partial { .. } => State::Partial,
            Outcome::Mismatch { .. } => State::Mismatch,
            Outcome::AccountNotFound { .. } => State::AccountNotFound,
            Outcome::Rejected { .. } => State::Rejected,
        }
    }

    /// The amount this answer holds, in fen (0 when nothing was stopped).
    pub fn held(&self) -> i64 {
        match self {
            Outcome::Executed { held, .. } | Outcome::Partial { held, .. } => held.get(),
            Outcome::Mismatch { .. }
            | Outcome::AccountNotFound { .. }
            | Outcome::Rejected { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub outcome: Outcome,
    pub received_at: Timestamp,
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
}

impl InstructionRecord {
    pub fn institution(&self) -> &str {
        self.account.institution_code.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instruction was sent on the institution's stream.
    Delivered,
    /// The institution answered.
    Acknowledged(Outcome),
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed(Box<InstructionRecord>),
    /// Nothing changed: a repeated delivery or an identical acknowledgement.
    Unchanged,
}

/// The one transition function.
pub fn apply(rec: &InstructionRecord, event: &Event, now: Timestamp) -> Result<Applied, Error> {
    match (rec.state, event) {
        (State::Pending, Event::Delivered) => {
            let mut next = rec.clone();
            next.state = State::Delivered;
            next.delivered_at = Some(now);
            Ok(Applied::Changed(Box::new(bump(next, now))))
        }
        (
            State::Delivered
            | State::Executed
            | State::Partial
            | State::Mismatch
            | State::AccountNotFound
            | State::Rejected,
            Event::Delivered,
        ) => Ok(Applied::Unchanged),
        (State::Pending | State::Delivered, Event::Acknowledged(outcome)) => {
            check_outcome(rec, outcome)?;
            let mut next = rec.clone();
            next.state = outcome.state();
            next.ack = Some(Acknowledgement {
                outcome: outcome.clone(),
                received_at: now,
            });
            Ok(Applied::Changed(Box::new(bump(next, now))))
        }
        (
            State::Executed
            | State::Partial
            | State::Mismatch
            | State::AccountNotFound
            | State::Rejected,
            Event::Acknowledged(outcome),
        ) => match &rec.ack {
            Some(ack) if ack.outcome == *outcome => Ok(Applied::Unchanged),
            _ => Err(Error::FailedPrecondition(format!(
                "instruction {} was already answered {:?}; a different answer is refused",
                rec.instruction_id, rec.state
            ))),
        },
    }
}

fn bump(mut rec: InstructionRecord, now: Timestamp) -> InstructionRecord {
    rec.updated_at = now;
    rec.version += 1;
    rec
}

/// An answer must fit the instruction it answers.
fn check_outcome(rec: &InstructionRecord, outcome: &Outcome) -> Result<(), Error> {
    let requested = rec.account.amount.get();
    match outcome {
        Outcome::Executed { held, .. } if held.get() != requested => Err(Error::invalid(
            "executed.amount_held_fen",
            format!(
                "must equal the amount requested ({requested} fen); report a smaller hold as PARTIAL"
            ),
        )),
        Outcome::Partial { held, .. } if held.get() >= requested => Err(Error::invalid(
            "partial.amount_held_fen",
            format!(
                "must be less than the amount requested ({requested} fen); report the whole amount as EXECUTED"
            ),
        )),
        Outcome::Executed { .. }
        | Outcome::Partial { .. }
        | Outcome::Mismatch { .. }
        | Outcome::AccountNotFound { .. }
        | Outcome::Rejected { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AccountNumber, InstitutionCode};
    use crate::domain::notice::AccountKind;

    fn record(state: State) -> InstructionRecord {
        InstructionRecord {
            instruction_id: "I1".into(),
            notice_id: "N1".into(),
            case_reference: "C1".into(),
            police_agency: "PSB".into(),
            action: Action::StopPayment,
            account: SuspectAccount {
                institution_code: InstitutionCode::parse("ICBC").unwrap(),
                account_number: AccountNumber::parse("6222021234").unwrap(),
                account_name: "Zhang San".into(),
                account_kind: AccountKind::Bank,
                amount: Fen::new_unchecked(10_000),
            },
            victim: VictimTransfer {
                institution_code: InstitutionCode::parse("CCB").unwrap(),
                account_number: AccountNumber::parse("6217001234").unwrap(),
                account_name: "Li Si".into(),
                currency: "CNY".into(),
                amount: Fen::new_unchecked(10_000),
                transfer_time: Timestamp(1),
                transaction_reference: "T1".into(),
            },
            state,
            sequence: 1,
            created_at: Timestamp(0),
            answer_due_at: Timestamp(300_000),
            delivered_at: None,
            ack: None,
            updated_at: Timestamp(0),
            version: 1,
        }
    }

    fn executed(held: i64) -> Outcome {
        Outcome::Executed {
            held: Fen::new_unchecked(held),
            balance: Fen::new_unchecked(5),
            executed_at: Timestamp(10),
        }
    }

    fn all_outcomes() -> Vec<Outcome> {
        vec![
            executed(10_000),
            Outcome::Partial {
                held: Fen::new_unchecked(400),
                balance: Fen::new_unchecked(400),
                executed_at: Timestamp(10),
            },
            Outcome::Mismatch {
                fields: vec![MismatchField::AccountName],
                detail: String::new(),
            },
            Outcome::AccountNotFound {
                detail: String::new(),
            },
            Outcome::Rejected {
                reason: "closed".into(),
            },
        ]
    }

    const FINAL: [State; 5] = [
        State::Executed,
        State::Partial,
        State::Mismatch,
        State::AccountNotFound,
        State::Rejected,
    ];

    #[test]
    fn delivery_moves_pending_to_delivered_once() {
        let rec = record(State::Pending);
        let Applied::Changed(next) = apply(&rec, &Event::Delivered, Timestamp(5)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(next.state, State::Delivered);
        assert_eq!(next.delivered_at, Some(Timestamp(5)));
        assert_eq!(next.version, 2);
        assert_eq!(
            apply(&next, &Event::Delivered, Timestamp(6)).unwrap(),
            Applied::Unchanged
        );
    }

    #[test]
    fn delivery_of_an_answered_instruction_changes_nothing() {
        for state in FINAL {
            assert_eq!(
                apply(&record(state), &Event::Delivered, Timestamp(5)).unwrap(),
                Applied::Unchanged
            );
        }
    }

    #[test]
    fn every_outcome_is_accepted_from_pending_and_delivered() {
        for from in [State::Pending, State::Delivered] {
            for outcome in all_outcomes() {
                let Applied::Changed(next) = apply(
                    &record(from),
                    &Event::Acknowledged(outcome.clone()),
                    Timestamp(7),
                )
                .unwrap() else {
                    panic!("expected a change")
                };
                assert_eq!(next.state, outcome.state());
                assert!(next.state.is_final());
                assert_eq!(next.ack.as_ref().unwrap().received_at, Timestamp(7));
            }
        }
    }

    #[test]
    fn identical_answer_again_is_a_no_op() {
        for outcome in all_outcomes() {
            let Applied::Changed(answered) = apply(
                &record(State::Delivered),
                &Event::Acknowledged(outcome.clone()),
                Timestamp(7),
            )
            .unwrap() else {
                panic!("expected a change")
            };
            assert_eq!(
                apply(&answered, &Event::Acknowledged(outcome), Timestamp(8)).unwrap(),
                Applied::Unchanged
            );
        }
    }

    #[test]
    fn a_different_answer_to_an_answered_instruction_is_refused() {
        for first in all_outcomes() {
            let Applied::Changed(answered) = apply(
                &record(State::Delivered),
                &Event::Acknowledged(first.clone()),
                Timestamp(7),
            )
            .unwrap() else {
                panic!("expected a change")
            };
            for second in all_outcomes().into_iter().filter(|o| *o != first) {
                let err = apply(&answered, &Event::Acknowledged(second), Timestamp(8)).unwrap_err();
                assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
            }
            // Same kind, different particulars: refused too.
            if let Outcome::Executed { .. } = first {
                let other = Outcome::Executed {
                    held: Fen::new_unchecked(10_000),
                    balance: Fen::new_unchecked(6),
                    executed_at: Timestamp(10),
                };
                assert!(apply(&answered, &Event::Acknowledged(other), Timestamp(8)).is_err());
            }
        }
    }

    #[test]
    fn executed_must_hold_the_whole_amount_and_partial_less() {
        let rec = record(State::Delivered);
        let err = apply(&rec, &Event::Acknowledged(executed(9_999)), Timestamp(7)).unwrap_err();
        assert!(
            err.to_string().contains("executed.amount_held_fen"),
            "{err}"
        );
        let partial_all = Outcome::Partial {
            held: Fen::new_unchecked(10_000),
            balance: Fen::new_unchecked(10_000),
            executed_at: Timestamp(10),
        };
        let err = apply(&rec, &Event::Acknowledged(partial_all), Timestamp(7)).unwrap_err();
        assert!(err.to_string().contains("partial.amount_held_fen"), "{err}");
    }
}
