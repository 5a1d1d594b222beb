//! Per-caller rate limits: a token bucket per key (the caller's organisation, from its
//! certificate), so one noisy caller cannot exhaust a global budget for everyone.
//!
//! Rates are about load, not law, so they run on the monotonic clock, not the hub's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` tokens a second, up to `per_second` saved (a burst of one second's worth).
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(per_second.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `key`; on refusal, how many milliseconds until they would be there.
    pub fn take(&self, key: &str, n: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        let n = f64::from(n);
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err((((n - *tokens) / self.per_second) * 1000.0).ceil() as u64)
        }
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_per_key() {
        let limiter = RateLimiter::new(10);
        assert!(limiter.take("ICBC", 10).is_ok());
        let wait = limiter.take("ICBC", 5).unwrap_err();
        assert!(wait > 0 && wait <= 500, "{wait}");
        // Another caller has its own bucket.
        assert!(limiter.take("CCB", 10).is_ok());
    }
}
