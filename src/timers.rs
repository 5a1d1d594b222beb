//! The one timer task: sleeps until the earliest due timer, a new timer, or a move of the
//! hub's clock, then has the writer fire what is due. No fixed-interval polling.
//!
//! Timers live in the store's time-ordered `timers` tree, so they survive restarts: after one,
//! the task's first look fires everything that fell due while the hub was down.

use std::sync::Arc;
use std::time::Duration;

use crate::hub::Hub;

/// The longest single sleep: a bound on how long a wrong wall-clock jump can delay a timer.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// After a store error, wait this long before trying again.
const RETRY: Duration = Duration::from_secs(1);

pub async fn run(hub: Arc<Hub>) {
    let shutdown = hub.shutdown_token().clone();
    let wake = hub.timers_changed().clone();
    let mut clock_moved = hub.clock().changes();
    loop {
        // Register for wake-ups before looking, so that a timer added meanwhile is not missed.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let sleep_for = match hub.store().first_timer_due() {
            Ok(Some(due)) => {
                let now = hub.now().millis();
                if due <= now {
                    match hub.fire_timers().await {
                        Ok(n) => {
                            hub.metrics()
                                .timer_lag
                                .observe(std::time::Duration::from_millis(
                                    (now - due).max(0) as u64
                                ));
                            tracing::debug!(fired = n, lag_ms = now - due, "timers fired")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "firing timers failed");
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                    continue;
                }
                Duration::from_millis((due - now) as u64).min(MAX_SLEEP)
            }
            // Nothing scheduled: only a new timer (or a clock move) can change that.
            Ok(None) => Duration::from_secs(24 * 3600),
            Err(e) => {
                tracing::warn!(error = %e, "reading timers failed");
                RETRY
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep_for) => {}
            _ = &mut woken => {}
            _ = async {
                match clock_moved.as_mut() {
                    Some(rx) => { let _ = rx.changed().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
