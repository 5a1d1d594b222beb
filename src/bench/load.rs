//! The load generator every measurement uses: a closed loop (N operations in flight, each
//! worker starting the next when the last one ends) and an open loop (operations started on a
//! fixed schedule, whether or not earlier ones have finished), each with a warm-up that is not
//! counted, latencies, errors, and the CPU time of this process and of the server measured.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latencies in nanoseconds, collected from many tasks.
#[derive(Debug, Default)]
pub struct Samples(Mutex<Vec<u64>>);

impl Samples {
    pub fn push(&self, nanos: u64) {
        if let Ok(mut v) = self.0.lock() {
            v.push(nanos);
        }
    }
    pub fn extend(&self, more: Vec<u64>) {
        if let Ok(mut v) = self.0.lock() {
            v.extend(more);
        }
    }
    /// Takes what was collected, sorted, leaving the collection empty.
    pub fn take(&self) -> Latencies {
        let mut v = self
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        v.sort_unstable();
        Latencies(v)
    }
}

/// Sorted latencies, nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies(pub Vec<u64>);

impl Latencies {
    /// The `q` quantile in milliseconds (0 when empty).
    pub fn ms(&self, q: f64) -> f64 {
        let v = &self.0;
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i.min(v.len() - 1)] as f64 / 1e6
    }
    /// p50, p99 and p999 in milliseconds, joined by `sep`.
    pub fn quantiles(&self, sep: &str) -> String {
        [0.5, 0.99, 0.999]
            .map(|q| format!("{:.3}", self.ms(q)))
            .join(sep)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// CPU time of the benchmark itself and of the server under measurement.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    client: f64,
    server: f64,
}

impl CpuMark {
    pub fn now(server_pid: Option<u32>) -> CpuMark {
        CpuMark {
            client: super::child::cpu_secs(std::process::id()),
            server: server_pid.map_or(0.0, super::child::cpu_secs),
        }
    }
}

/// What one level of load did, over the measured window only.
#[derive(Debug, Clone, Default)]
pub struct Level {
    pub concurrency: usize,
    /// Operations completed within the window.
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
    pub latency: Latencies,
    /// Cores busy on average: the benchmark process, the server.
    pub client_cores: f64,
    pub server_cores: f64,
    /// The measured window.
    pub window: Option<(Instant, Instant)>,
}

impl Level {
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
    /// Server CPU per operation, microseconds.
    pub fn server_us_per_op(&self) -> f64 {
        self.server_cores * self.secs * 1e6 / (self.ops.max(1) as f64)
    }
    fn finish(&mut self, from: CpuMark, to: CpuMark) {
        self.client_cores = (to.client - from.client) / self.secs.max(1e-9);
        self.server_cores = (to.server - from.server) / self.secs.max(1e-9);
    }
}

/// How long to load before counting: a fifth of the run, at most a second.
pub fn warm_up(measure: Duration) -> Duration {
    (measure / 5).min(Duration::from_secs(1))
}

/// Runs `op(worker, n)` with `concurrency` in flight for warm-up plus `measure`; `op` returns
/// whether it succeeded. Only operations that end inside the measured window count.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    measure: Duration,
    server_pid: Option<u32>,
    op: F,
) -> Level
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now() + warm_up(measure);
    let end = start + measure;
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut n) = (Vec::new(), 0u64, 0u64);
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let ok = op(w, n).await;
                n += 1;
                let done = Instant::now();
                if t >= start && done <= end {
                    if ok {
                        lat.push((done - t).as_nanos() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    measure_window(start, end, server_pid, concurrency, tasks).await
}

/// Starts `op(n)` at `rate` per second for warm-up plus `measure`, each in its own task.
pub async fn open_loop<F, Fut>(
    rate: u64,
    measure: Duration,
    server_pid: Option<u32>,
    op: F,
) -> Level
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let begin = Instant::now();
    let start = begin + warm_up(measure);
    let end = start + measure;
    let samples = Arc::new(Samples::default());
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pacer = {
        let (samples, errors) = (samples.clone(), errors.clone());
        tokio::spawn(async move {
            let mut started = 0u64;
            let mut inflight = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let now = Instant::now();
                if now >= end {
                    break;
                }
                // However late this tick is, catch up with the schedule.
                let due = ((now - begin).as_secs_f64() * rate as f64) as u64;
                while started < due {
                    let (op, samples, errors) = (op.clone(), samples.clone(), errors.clone());
                    let n = started;
                    started += 1;
                    inflight.push(tokio::spawn(async move {
                        let t = Instant::now();
                        let ok = op(n).await;
                        let done = Instant::now();
                        if t >= start && done <= end {
                            if ok {
                                samples.push((done - t).as_nanos() as u64);
                            } else {
                                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }));
                }
            }
            for t in inflight {
                let _ = t.await;
            }
            (Vec::new(), 0)
        })
    };
    let mut level = measure_window(start, end, server_pid, 0, vec![pacer]).await;
    level.latency = samples.take();
    level.ops = level.latency.len() as u64;
    level.errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    level
}

async fn measure_window(
    start: Instant,
    end: Instant,
    server_pid: Option<u32>,
    concurrency: usize,
    tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, u64)>>,
) -> Level {
    tokio::time::sleep_until(start.into()).await;
    let from = CpuMark::now(server_pid);
    tokio::time::sleep_until(end.into()).await;
    let to = CpuMark::now(server_pid);
    let all = Samples::default();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let latency = all.take();
    let mut level = Level {
        concurrency,
        ops: latency.len() as u64,
        errors,
        secs: (end - start).as_secs_f64(),
        latency,
        window: Some((start, end)),
        ..Level::default()
    };
    level.finish(from, to);
    level
}
