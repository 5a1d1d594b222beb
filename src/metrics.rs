//! Prometheus metrics: a small registry of counters, gauges and histograms, rendered in the
//! text exposition format on a separate HTTP port (`--metrics-listen`).
//!
//! Hand-rolled rather than a metrics crate: a handful of families, lock-free updates on the
//! hot path, and nothing else to learn.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    /// (method, code) -> count.
    requests: Mutex<BTreeMap<(String, String), u64>>,
    /// method -> latency to the response head.
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// (action, state) -> instructions that entered the state.
    transitions: Mutex<BTreeMap<(String, String), u64>>,
    /// institution -> instructions awaiting its answer.
    open: Mutex<BTreeMap<String, i64>>,
    pub bank_streams: AtomicI64,
    pub blacklist_in_force: AtomicI64,
    /// Free bytes on the store's filesystem at the last write (-1 before the first).
    pub store_free_bytes: AtomicI64,
    /// 1 while writes are refused because free space is below the reserve.
    pub writes_refused: AtomicI64,
    pub timer_lag: Histogram,
    pub store_sync: Histogram,
}

impl Metrics {
    pub fn request(&self, method: &str, code: &str, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method.to_owned(), code.to_owned()))
            .or_default() += 1;
        let h = self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(method.to_owned())
            .or_default()
            .clone();
        h.observe(took);
    }

    pub fn transition(&self, action: &str, state: &str) {
        *self
            .transitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((action.to_owned(), state.to_owned()))
            .or_default() += 1;
    }

    pub fn set_open(&self, counts: impl IntoIterator<Item = (String, i64)>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for (institution, n) in counts {
            open.insert(institution, n);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP stophub_requests_total gRPC requests by method and status code.\n# TYPE stophub_requests_total counter\n");
        for ((method, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "stophub_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP stophub_request_duration_seconds Time to the response head, by method.\n# TYPE stophub_request_duration_seconds histogram\n");
        for (method, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h.render(
                &mut out,
                "stophub_request_duration_seconds",
                &format!("method=\"{method}\""),
            );
        }
        out.push_str("# HELP stophub_instruction_transitions_total Instructions entering a state, by action and state.\n# TYPE stophub_instruction_transitions_total counter\n");
        for ((action, state), n) in self
            .transitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "stophub_instruction_transitions_total{{action=\"{action}\",state=\"{state}\"}} {n}"
            );
        }
        out.push_str("# HELP stophub_open_instructions Instructions awaiting an institution's answer (its backlog).\n# TYPE stophub_open_instructions gauge\n");
        for (institution, n) in self.open.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "stophub_open_instructions{{institution=\"{institution}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stophub_bank_streams Connected bank delivery streams.\n# TYPE stophub_bank_streams gauge\nstophub_bank_streams {}",
            self.bank_streams.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP stophub_blacklist_entries Blacklist entries in force.\n# TYPE stophub_blacklist_entries gauge\nstophub_blacklist_entries {}",
            self.blacklist_in_force.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP stophub_store_free_bytes Free space on the store's filesystem, at the last write.\n# TYPE stophub_store_free_bytes gauge\nstophub_store_free_bytes {}",
            self.store_free_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP stophub_writes_refused 1 while writes are refused: free space is below the reserve.\n# TYPE stophub_writes_refused gauge\nstophub_writes_refused {}",
            self.writes_refused.load(Ordering::Relaxed)
        );
        out.push_str("# HELP stophub_timer_lag_seconds How late timers fired after their due time.\n# TYPE stophub_timer_lag_seconds histogram\n");
        self.timer_lag
            .render(&mut out, "stophub_timer_lag_seconds", "");
        out.push_str("# HELP stophub_store_sync_seconds Durable sync (flush and fdatasync) of a batch.\n# TYPE stophub_store_sync_seconds histogram\n");
        self.store_sync
            .render(&mut out, "stophub_store_sync_seconds", "");
        out
    }
}

/// Serves `GET /metrics` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = shutdown.cancelled() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if head.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found: try /metrics\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
