//! A hub with many open instructions: fill a store through the hub's own writer (in this
//! process, many notices in flight so that it commits in large groups), start the real hub
//! over it, and measure the time from start to serving, its memory, and the replay of every
//! open instruction to the subscribing banks (which is what a restart costs them).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::child::{Memory, POLICE, Server, Setup};
use super::flow::Flow;
use crate::clock::SystemClock;
use crate::hub::{Hub, HubConfig};
use crate::participants::{ParticipantsFile, Registry};

/// Suspect accounts (instructions) per notice while filling.
const ACCOUNTS_PER_NOTICE: u64 = 10;

#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub instructions: u64,
    /// None when an earlier run's store was reused.
    pub fill_secs: Option<f64>,
    pub start_secs: f64,
    pub serving: Memory,
    pub replayed: u64,
    pub replay_secs: f64,
    pub after_replay: Memory,
}

/// Creates `n` open stop-payment instructions in a store at `dir` with the hub's writer.
pub async fn fill(dir: &Path, file: &ParticipantsFile, n: u64) -> anyhow::Result<()> {
    let store = Arc::new(crate::store::Store::open(dir)?);
    let registry = Arc::new(Registry::from_file(file.clone())?);
    let mut config = HubConfig::default();
    // As the benchmark's hub is configured: no answer deadline falls due during the run.
    config.policy.answer_stop_ms = 30 * 86_400_000;
    config.max_backlog = u64::MAX;
    let (hub, writer) = Hub::start(
        store,
        registry.clone(),
        config.clone(),
        Arc::new(SystemClock),
        CancellationToken::new(),
    )?;
    let flow = Flow::new(file.institutions.iter().map(|i| i.code.clone()).collect());
    let notices = n.div_ceil(ACCOUNTS_PER_NOTICE);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (hub, flow, next, registry, config) = (
            hub.clone(),
            flow.clone(),
            next.clone(),
            registry.clone(),
            config.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= notices {
                    return anyhow::Ok(());
                }
                let accounts = ACCOUNTS_PER_NOTICE.min(n - k * ACCOUNTS_PER_NOTICE) as usize;
                let request = flow.notice(accounts, false);
                let notice =
                    crate::service::convert::new_notice(&request, &registry, &config, hub.now())?;
                hub.submit(POLICE, notice).await?;
                if (k + 1) % 10_000 == 0 {
                    eprintln!(
                        "  {} open instructions in {:.0} s",
                        (k + 1) * ACCOUNTS_PER_NOTICE,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    drop(hub);
    writer.stop().await;
    Ok(())
}

/// Starts the hub over the filled store at `data`, then lets every bank subscribe and
/// receive its open instructions.
pub async fn measure(
    setup: &Setup,
    data: &Path,
    instructions: u64,
    fill_secs: Option<f64>,
) -> anyhow::Result<OpenReport> {
    let tls = setup.tls("police", POLICE)?;
    let started = Instant::now();
    let hub = Server::hub(setup, data)?;
    hub.wait_healthy(&tls, Duration::from_secs(300)).await?;
    let start_secs = started.elapsed().as_secs_f64();
    let serving = hub.memory();
    println!(
        "  serving after {start_secs:.2} s; resident {:.0} MiB",
        serving.rss_mib
    );
    let flow = Flow::new(setup.institutions.clone());
    flow.submitted.store(instructions, Ordering::Relaxed);
    let t = Instant::now();
    super::connect_banks(&flow, setup, &hub.url).await?;
    let missing = flow.drain(Duration::from_secs(900)).await;
    let replay_secs = t.elapsed().as_secs_f64();
    let report = OpenReport {
        instructions,
        fill_secs,
        start_secs,
        serving,
        replayed: instructions - missing,
        replay_secs,
        after_replay: hub.memory(),
    };
    println!(
        "  replayed {} to {} banks in {replay_secs:.1} s; resident {:.0} MiB (peak {:.0})",
        report.replayed,
        setup.institutions.len(),
        report.after_replay.rss_mib,
        report.after_replay.peak_mib
    );
    Ok(report)
}
