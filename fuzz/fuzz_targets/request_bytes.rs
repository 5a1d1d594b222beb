//! Fuzz target: arbitrary bytes decoded as every request the hub parses (notices, answers,
//! listings, screenings, renewals, releases) and validated. A crash is a panic in parsing, a
//! refusal that names no field of the request, or an accepted request that converts other
//! than as sent or does not round trip (`stophub::service::convert::checks`).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use stophub::service::convert::checks::{Edge, check_bytes};

static EDGE: LazyLock<Edge> = LazyLock::new(Edge::default);

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = check_bytes(&EDGE, data) {
        panic!("{broken}");
    }
});
