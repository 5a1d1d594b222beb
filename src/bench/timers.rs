//! `stophub bench-timers`: how the durable timers behave with many pending: the time to fill
//! the store, the hub's start-up time over it (open the store, start the writer, find the
//! earliest timer), resident memory, and the rate at which due timers fire.
//!
//! Timers are written straight into a store in a temporary directory (the same trees and keys
//! the hub uses), each pointing at an instruction id; firing one whose instruction is absent
//! only deletes it, so the firing rate measured is that of the timer machinery itself.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::hub::{Hub, HubConfig};
use crate::participants::{self, Registry};
use crate::store::{Store, TimerKind, TreeId, Writes, keys};

#[derive(Debug, Clone, Args)]
pub struct TimerBenchArgs {
    /// Pending timers to create.
    #[arg(long, env = "STOPHUB_BENCH_TIMERS", default_value_t = 1_000_000)]
    pub count: u64,
    /// Timers to make due and fire after the restart.
    #[arg(long, env = "STOPHUB_BENCH_FIRE", default_value_t = 100_000)]
    pub fire: u64,
    /// Internal: measure the restart over an existing store, in a fresh process.
    #[arg(long, hide = true)]
    pub restart_in: Option<std::path::PathBuf>,
    /// Internal: the fill's start instant, ms.
    #[arg(long, hide = true, default_value_t = 0)]
    pub start_ms: i64,
}

/// Resident memory of this process, in MiB (Linux).
pub fn rss_mib() -> f64 {
    super::rss_mib_of(std::process::id())
}

pub async fn run(args: TimerBenchArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.restart_in {
        return restart(dir, &args).await;
    }
    let dir = tempfile::tempdir().context("temporary directory")?;
    let start = SystemClock.now();
    let t = Instant::now();
    {
        let store = Store::open(dir.path())?;
        let mut n = 0u64;
        while n < args.count {
            let mut w = Writes::default();
            for _ in 0..10_000.min(args.count - n) {
                let due = start.millis() + (n as i64) * spacing(args.count);
                let id = keys::instruction_id(n + 1);
                w.put_raw(
                    TreeId::Timers,
                    keys::timer(due, TimerKind::AnswerDue as u8, &id),
                    Vec::new(),
                );
                n += 1;
            }
            store.commit(&w)?;
        }
        store.sync()?;
    }
    println!("timers pending:            {}", args.count);
    println!(
        "fill (batches of 10k):     {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!(
        "store on disk:             {:.0} MiB",
        walk_size(dir.path()) as f64 / 1_048_576.0
    );
    // The restart runs in a fresh process, so its memory is its own.
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("bench-timers")
        .arg("--count")
        .arg(args.count.to_string())
        .arg("--fire")
        .arg(args.fire.to_string())
        .arg("--start-ms")
        .arg(start.millis().to_string())
        .arg("--restart-in")
        .arg(dir.path())
        .status()?;
    anyhow::ensure!(status.success(), "the restart measurement failed");
    Ok(())
}

/// Due times spread over 48 hours.
fn spacing(count: u64) -> i64 {
    (48 * 3_600_000 / count.max(1) as i64).max(1)
}

/// What `serve` does before it serves, over the full timer tree; then fire some.
async fn restart(dir: &std::path::Path, args: &TimerBenchArgs) -> anyhow::Result<()> {
    let rss_empty = rss_mib();
    let t = Instant::now();
    let store = Arc::new(Store::open(dir)?);
    let registry = Arc::new(Registry::from_file(participants::demo())?);
    let clock = ManualClock::new(crate::domain::ids::Timestamp::from_millis(args.start_ms));
    let (hub, writer) = Hub::start(
        store,
        registry,
        HubConfig::default(),
        Arc::new(clock.clone()),
        CancellationToken::new(),
    )?;
    let first = hub.store().first_timer_due()?;
    let startup = t.elapsed();
    let rss_started = rss_mib();
    clock.set(crate::domain::ids::Timestamp::from_millis(
        args.start_ms + (args.fire as i64) * spacing(args.count) - 1,
    ));
    let t = Instant::now();
    let mut fired = 0;
    loop {
        let n = hub.fire_timers().await?;
        if n == 0 {
            break;
        }
        fired += n;
    }
    let firing = t.elapsed();
    let rss_fired = rss_mib();
    writer.stop().await;
    println!(
        "start-up over them:        {:.0} ms (open store, start writer, find earliest: {})",
        startup.as_secs_f64() * 1000.0,
        first.is_some()
    );
    println!(
        "resident memory:           {rss_empty:.0} MiB at process start, {rss_started:.0} MiB after start-up, {rss_fired:.0} MiB after firing"
    );
    println!(
        "fired after restart:       {fired} in {:.2} s ({:.0}/s, in commands of up to 256)",
        firing.as_secs_f64(),
        fired as f64 / firing.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn walk_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
