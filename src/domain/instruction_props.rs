//! Property tests of the instruction state machine over random event sequences: random hub
//! steps (submissions, deliveries, answers with random amounts, times and onward transfers,
//! repeated answers, timers, releases, renewals, hops) on the instructions of one account,
//! checked after every step by [`crate::domain::instruction_model`] (amounts conserved, no
//! third stop, no transition out of a final state, records consistent). The exhaustive
//! single-step table is in `instruction_tests.rs`; the planner's own property in
//! `funds_tests.rs`.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::domain::ids::Fen;
use crate::domain::instruction::{Applied, Event, InstructionRecord, Outcome, State};
use crate::domain::instruction_model::{Amount, Onward, Reply, Start, Step, check_step, run};
use crate::domain::policy::Policy;
use crate::props_config::config;

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        3 => Just(Amount::All),
        2 => (0u16..3).prop_map(Amount::AllBut),
        1 => (1u16..3).prop_map(Amount::More),
        1 => any::<u16>().prop_map(Amount::AllBut),
        1 => any::<u32>().prop_map(Amount::Exactly),
    ]
}

fn onward() -> impl Strategy<Value = Vec<Onward>> {
    vec(
        (amount(), -5i16..600, any::<u8>()).prop_map(|(amount, minutes, to)| Onward {
            amount,
            minutes_after_transfer: minutes,
            to,
        }),
        0..4,
    )
}

fn skew() -> impl Strategy<Value = i16> {
    prop_oneof![3 => -3i16..=1, 1 => any::<i16>()]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        6 => (any::<bool>(), amount(), amount(), skew(), onward()).prop_map(
            |(partial, held, balance, skew_minutes, onward)| {
                Reply::Stopped { partial, held, balance, skew_minutes, onward }
            }
        ),
        3 => (
            (amount(), amount(), amount(), amount()),
            any::<bool>(),
            prop::bool::weighted(0.2),
            skew(),
            onward(),
        )
            .prop_map(|((frozen, balance, available, not_frozen), reason, earlier, skew_minutes, onward)| {
                Reply::Frozen { frozen, balance, available, not_frozen, reason, earlier, skew_minutes, onward }
            }),
        3 => skew().prop_map(|skew_minutes| Reply::Done { skew_minutes }),
        1 => Just(Reply::Mismatch),
        1 => Just(Reply::NotFound),
        1 => Just(Reply::Rejected),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let i = any::<u8>;
    prop_oneof![
        2 => prop_oneof![0u16..10, 0u16..=u16::MAX].prop_map(|minutes| Step::Wait { minutes }),
        3 => Just(Step::SubmitStop),
        1 => Just(Step::SubmitFreeze),
        2 => i().prop_map(|i| Step::Deliver { i }),
        5 => (i(), reply()).prop_map(|(i, reply)| Step::Answer { i, reply }),
        1 => i().prop_map(|i| Step::Repeat { i }),
        1 => i().prop_map(|i| Step::AnswerDeadline { i }),
        2 => i().prop_map(|i| Step::TermEnded { i }),
        2 => i().prop_map(|i| Step::Release { i }),
        2 => (i(), prop::option::of(0u16..400)).prop_map(|(i, days)| Step::Renew { i, days }),
        1 => i().prop_map(|i| Step::Hops { i }),
    ]
}

fn start() -> impl Strategy<Value = Start> {
    (
        prop_oneof![1u32..5, 1u32..10_000_000, any::<u32>()],
        prop::bool::weighted(0.2),
        any::<bool>(),
        0u8..6,
    )
        .prop_map(|(requested, receive_only, major, follow_depth)| Start {
            requested,
            receive_only,
            major,
            follow_depth,
        })
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn random_hub_steps_never_break_an_invariant(start in start(), steps in vec(step(), 1..40)) {
        if let Err(broken) = run(&start, &steps) {
            prop_assert!(false, "{}", broken);
        }
    }
}

fn held_more_than_asked(r: &mut InstructionRecord) {
    if let Some(Outcome::Executed { held, .. }) = r.ack.as_mut().map(|a| &mut a.outcome) {
        *held = Fen::new_unchecked(held.get() + 1);
    }
}

fn back_to_pending(r: &mut InstructionRecord) {
    r.state = State::Pending;
}

fn a_shorter_term(r: &mut InstructionRecord) {
    r.effective_until = r.effective_until.map(|t| t.plus_millis(-1));
}

fn another_amount_asked(r: &mut InstructionRecord) {
    r.account.amount = Fen::new_unchecked(5);
}

/// Stops and amount-limited freezes of `requested` fen, not following the money.
fn plain(requested: u32) -> Start {
    Start {
        requested,
        receive_only: false,
        major: false,
        follow_depth: 0,
    }
}

/// The invariant checker catches what it claims to: a model that could only pass would prove
/// nothing.
#[test]
fn the_checker_catches_a_broken_record() {
    let policy = Policy::default();
    let start = plain(1_000);
    let steps = [
        Step::SubmitStop,
        Step::Answer {
            i: 0,
            reply: Reply::Stopped {
                partial: false,
                held: Amount::All,
                balance: Amount::All,
                skew_minutes: 0,
                onward: Vec::new(),
            },
        },
    ];
    let records = run(&start, &steps).expect("a stop executed in full is consistent");
    let record = records[0].clone();
    assert_eq!(record.state, State::Executed);
    let check = |edit: fn(&mut InstructionRecord)| {
        let mut broken = record.clone();
        edit(&mut broken);
        broken.version = record.version + 1;
        let result = Ok(Applied::Changed(Box::new(broken)));
        check_step(
            &record,
            &Event::FollowUpClosed,
            record.updated_at,
            &result,
            &policy,
        )
    };
    assert_eq!(check(|_| {}), Ok(()));
    for (what, edit) in [
        ("more held than asked", held_more_than_asked as fn(&mut _)),
        ("back to pending", back_to_pending),
        ("a shorter term", a_shorter_term),
        ("another amount asked", another_amount_asked),
    ] {
        assert!(check(edit).is_err(), "{what} went unnoticed");
    }
    // Out of a final state: a lapsed stop may not come back.
    let mut lapsed = record.clone();
    lapsed.state = State::Lapsed;
    let mut revived = lapsed.clone();
    revived.state = State::Executed;
    revived.version += 1;
    let result = Ok(Applied::Changed(Box::new(revived)));
    assert!(
        check_step(
            &lapsed,
            &Event::Delivered,
            lapsed.updated_at,
            &result,
            &policy
        )
        .is_err()
    );
}

/// Found by the property above: a release issued while the stop awaited its answer, the stop
/// answered MISMATCH, then the release answered DONE. The release had nothing to carry out,
/// and the stop went on naming it as the follow-up awaiting its answer.
#[test]
fn a_release_answered_after_its_stop_failed_is_no_longer_pending() {
    let start = plain(1);
    let steps = [
        Step::SubmitStop,
        Step::Release { i: 0 },
        Step::Answer {
            i: 0,
            reply: Reply::Mismatch,
        },
        Step::Answer {
            i: 1,
            reply: Reply::Done { skew_minutes: 0 },
        },
    ];
    let records = run(&start, &steps).expect("no invariant broken");
    let (stop, release) = (&records[0], &records[1]);
    assert_eq!(
        (stop.state, release.state),
        (State::Mismatch, State::Executed)
    );
    assert_eq!(stop.pending_follow_up, None);
}
