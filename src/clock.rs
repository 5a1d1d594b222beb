//! The hub's clock: the one place the wall clock is read. Everything else receives `now`.
//!
//! Tests inject a [`ManualClock`] and move time forward instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

use crate::domain::ids::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// For clocks that jump (test clocks): a receiver that changes whenever the clock is moved,
    /// so that the timer task re-checks instead of sleeping in real time.
    fn changes(&self) -> Option<watch::Receiver<i64>> {
        None
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>, Arc<watch::Sender<i64>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(
            Arc::new(AtomicI64::new(start.millis())),
            Arc::new(watch::Sender::new(start.millis())),
        )
    }
    /// Starts at the system's current time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }
    pub fn advance_millis(&self, ms: i64) {
        let now = self.0.fetch_add(ms, Ordering::SeqCst) + ms;
        self.1.send_replace(now);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.millis(), Ordering::SeqCst);
        self.1.send_replace(t.millis());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
    fn changes(&self) -> Option<watch::Receiver<i64>> {
        Some(self.1.subscribe())
    }
}
