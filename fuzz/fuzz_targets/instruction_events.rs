//! Fuzz target: random sequences of the hub's steps (submissions, deliveries, answers,
//! repeats, timers, releases, renewals, hops) on the instructions of one account, run by
//! `stophub::domain::instruction_model`, which checks after every step that amounts are
//! conserved, no third stop is issued, no final state is left and every record stays
//! consistent. A crash is the first invariant broken.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stophub::domain::instruction_model::{Start, Step, run};

fuzz_target!(|input: (Start, Vec<Step>)| {
    let (start, steps) = input;
    if let Err(broken) = run(&start, &steps) {
        panic!("{broken}");
    }
});
