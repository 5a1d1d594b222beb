//! How many cases the proptest property tests run: a bounded number each under `cargo test`,
//! so that all of them together add seconds, not minutes; `PROPTEST_CASES=N` (proptest's own
//! variable) runs N cases of every property instead, for a longer search. Failures found are
//! saved under `proptest-regressions/` beside the test file (proptest's default) and replayed
//! first on the next run.

use proptest::test_runner::Config;

/// `cases` per property unless PROPTEST_CASES says otherwise.
pub(crate) fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}
