//! `stophub bench`: the whole benchmark suite in one command, written up as `BENCHMARKS.md`.
//!
//! In one run, against processes it starts itself (each server a child process, so that its
//! memory and CPU time are its own; certificates minted per run; real mutual TLS, real sled,
//! real fsync), it measures:
//! - the ceiling: a bare tonic unary echo over the same TLS setup ([`echo`]);
//! - durable `SubmitNotice` per second, one and ten suspect accounts per notice, with every
//!   simulated bank subscribed and receiving; full cycles per second (submit, delivery,
//!   acknowledgement, the police watch seeing it); submit -> receive and acknowledgement ->
//!   watch latencies at a fixed offered rate and at saturation ([`flow`]);
//! - `CheckSubject` with ten million listed subjects ([`blacklist`]'s fill);
//! - start to serving, memory and the replay with a million open instructions ([`open`]).
//!
//! Every throughput is also given as a share of the echo at the same concurrency, so that
//! figures from different machines compare. Client and servers share the machine's cores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod blacklist;
mod child;
pub mod echo;
mod flow;
mod load;
mod open;
mod report;
pub mod timers;

use anyhow::Context;
use clap::Args;
use tonic::transport::Channel;

use crate::client;
use child::{POLICE, Server, Setup};
use flow::Flow;
use report::Results;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Operations in flight to measure at, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub concurrency: Vec<usize>,
    /// Suspect accounts per notice for the submission throughput, one series each.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    pub accounts: Vec<usize>,
    /// Seconds to measure each level (after a warm-up of a fifth of it, at most a second).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Simulated banks, each subscribed over its own connection with its own certificate.
    #[arg(long, default_value_t = 100)]
    pub banks: usize,
    /// HTTP/2 connections the police, echo and check load is spread over.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Offered notices per second for the fixed-rate latency measurement (open loop).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of the fixed-rate latency measurement.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
    /// Listed subjects for the CheckSubject measurement; 0 to skip it.
    #[arg(long, default_value_t = 10_000_000)]
    pub blacklist_entries: u64,
    /// Open instructions for the start-up and memory measurement; 0 to skip it.
    #[arg(long, default_value_t = 1_000_000)]
    pub open_instructions: u64,
    /// Keep the filled stores in this directory and reuse them in later runs of the same
    /// sizes (filling ten million entries takes minutes) [default: fill afresh, then delete].
    #[arg(long)]
    pub stores: Option<PathBuf>,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

/// Resident memory of process `pid`, in MiB (Linux; 0 where /proc cannot tell).
pub fn rss_mib_of(pid: u32) -> f64 {
    child::Memory::of(pid).rss_mib
}

/// Connects every bank of `setup` on its own connection and starts it receiving.
async fn connect_banks(flow: &Arc<Flow>, setup: &Setup, url: &str) -> anyhow::Result<()> {
    for institution in &setup.institutions {
        let channel = client::connect(url, &setup.tls("bank", institution)?).await?;
        flow::start_bank(flow.clone(), channel).await?;
    }
    Ok(())
}

async fn channels(
    url: &str,
    setup: &Setup,
    role: &str,
    orgs: &[String],
    n: usize,
) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for i in 0..n.max(1) {
        out.push(client::connect(url, &setup.tls(role, &orgs[i % orgs.len()])?).await?);
    }
    Ok(out)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let file = child::participants(args.banks);
    let setup = Setup::mint(tmp.path(), &file)?;
    let seconds = Duration::from_secs(args.seconds);
    let mut results = Results::new(&args, command);

    println!(
        "echo ceiling (unary, {} B, mutual TLS, {} connections)",
        echo::PAYLOAD_BYTES,
        args.connections
    );
    {
        let server = Server::echo(&setup)?;
        let police = [POLICE.to_owned()];
        server
            .wait_healthy(&setup.tls("police", POLICE)?, Duration::from_secs(30))
            .await?;
        let chans = channels(&server.url, &setup, "police", &police, args.connections).await?;
        for &c in &args.concurrency {
            let level = echo::measure(&chans, c, seconds, server.pid).await;
            report::print_level("echo", &level);
            results.echo.push(level);
        }
    }

    flows(&args, &setup, &mut results).await?;

    if args.blacklist_entries > 0 {
        results.check = Some(checks(&args, &setup).await?);
    }
    if args.open_instructions > 0 {
        results.open = Some(open_instructions(&args, &setup, &file).await?);
    }
    report::write(&args.out, &results)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Submissions, full cycles and latencies against a fresh hub with every bank subscribed.
async fn flows(args: &BenchArgs, setup: &Setup, results: &mut Results) -> anyhow::Result<()> {
    let seconds = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir().context("temporary directory")?;
    let hub = Server::hub(setup, &dir.path().join("data"))?;
    let started = Instant::now();
    hub.wait_healthy(&setup.tls("police", POLICE)?, Duration::from_secs(60))
        .await?;
    println!(
        "hub serving after {:.2} s (empty store)",
        started.elapsed().as_secs_f64()
    );
    let flow = Flow::new(setup.institutions.clone());
    connect_banks(&flow, setup, &hub.url).await?;
    let police: Vec<_> = channels(
        &hub.url,
        setup,
        "police",
        &[POLICE.to_owned()],
        args.connections,
    )
    .await?
    .into_iter()
    .map(client::police)
    .collect();
    let police = Arc::new(police);
    let top = args.concurrency.iter().copied().max().unwrap_or(1);

    for &accounts in &args.accounts {
        println!(
            "durable SubmitNotice, {accounts} account(s) per notice, {} banks receiving",
            args.banks
        );
        let mut series = Vec::new();
        for &c in &args.concurrency {
            let (flow2, police) = (flow.clone(), police.clone());
            let level = load::closed_loop(c, seconds, Some(hub.pid), move |w, _| {
                let (flow, mut client) = (flow2.clone(), police[w % police.len()].clone());
                async move { flow.submit(&mut client, accounts).await }
            })
            .await;
            let missing = flow.drain(Duration::from_secs(60)).await;
            let receive = flow.receive_latencies(&level);
            report::print_level("submit", &level);
            if missing > 0 {
                println!("  {missing} instructions not received within 60 s");
            }
            if accounts == 1 && c == top {
                results.saturation_submit = Some((level.clone(), receive, missing));
            }
            series.push(level);
        }
        results.submit.push((accounts, series));
    }

    println!("full cycle: submit, delivery, acknowledgement, police watch");
    for &c in &args.concurrency {
        let (flow2, police) = (flow.clone(), police.clone());
        let level = load::closed_loop(c, seconds, Some(hub.pid), move |w, _| {
            let (flow, mut client) = (flow2.clone(), police[w % police.len()].clone());
            async move { flow.cycle(&mut client).await }
        })
        .await;
        let receive = flow.receive_latencies(&level);
        let answer = flow.answer_latencies(&level);
        report::print_level("cycle", &level);
        if c == top {
            results.saturation_cycle = Some((level.clone(), receive, answer));
        }
        results.cycle.push(level);
    }

    println!(
        "full cycle at an offered {} notices/s for {} s (open loop)",
        args.rate, args.latency_seconds
    );
    let (flow2, police2) = (flow.clone(), police.clone());
    let level = load::open_loop(
        args.rate,
        Duration::from_secs(args.latency_seconds),
        Some(hub.pid),
        move |n| {
            let (flow, mut client) = (flow2.clone(), police2[n as usize % police2.len()].clone());
            async move { flow.cycle(&mut client).await }
        },
    )
    .await;
    let receive = flow.receive_latencies(&level);
    let answer = flow.answer_latencies(&level);
    report::print_level("fixed", &level);
    report::print_latency("submit -> receive", &receive);
    report::print_latency("ack -> watch", &answer);
    results.fixed_rate = Some((level, receive, answer));
    results.flow_hub_memory = hub.memory();
    Ok(())
}

/// A store filled once (or reused from `--stores`), and whether it was filled now (seconds).
fn store_dir(args: &BenchArgs, name: &str, tmp: &Path) -> (PathBuf, bool) {
    match &args.stores {
        Some(root) => {
            let dir = root.join(name);
            let ready = dir.join("filled").exists();
            (dir, ready)
        }
        None => (tmp.join(name), false),
    }
}

use std::path::Path;

async fn checks(args: &BenchArgs, setup: &Setup) -> anyhow::Result<report::CheckReport> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let (dir, ready) = store_dir(
        args,
        &format!("blacklist-{}", args.blacklist_entries),
        tmp.path(),
    );
    let fill_secs = if ready {
        println!("CheckSubject: reusing {}", dir.display());
        None
    } else {
        println!(
            "CheckSubject: filling {} listed subjects",
            args.blacklist_entries
        );
        let t = Instant::now();
        blacklist::fill(&dir.join("data"), args.blacklist_entries)?;
        std::fs::write(dir.join("filled"), b"")?;
        Some(t.elapsed().as_secs_f64())
    };
    let started = Instant::now();
    let hub = Server::hub(setup, &dir.join("data"))?;
    hub.wait_healthy(&setup.tls("police", POLICE)?, Duration::from_secs(300))
        .await?;
    let start_secs = started.elapsed().as_secs_f64();
    let chans = channels(
        &hub.url,
        setup,
        "bank",
        &setup.institutions,
        args.connections,
    )
    .await?;
    let clients: Arc<Vec<_>> = Arc::new(chans.into_iter().map(client::bank).collect());
    let entries = args.blacklist_entries;
    let mut levels = Vec::new();
    for &c in &args.concurrency {
        let clients = clients.clone();
        let level = load::closed_loop(
            c,
            Duration::from_secs(args.seconds),
            Some(hub.pid),
            move |w, n| {
                let mut bank = clients[w % clients.len()].clone();
                async move {
                    bank.check_subject(blacklist::check_request(((w as u64) << 40) + n, entries))
                        .await
                        .is_ok()
                }
            },
        )
        .await;
        report::print_level("check", &level);
        levels.push(level);
    }
    Ok(report::CheckReport {
        entries,
        fill_secs,
        start_secs,
        levels,
        memory: hub.memory(),
    })
}

async fn open_instructions(
    args: &BenchArgs,
    setup: &Setup,
    file: &crate::participants::ParticipantsFile,
) -> anyhow::Result<open::OpenReport> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let name = format!("open-{}-{}banks", args.open_instructions, args.banks);
    let (dir, ready) = store_dir(args, &name, tmp.path());
    let fill_secs = if ready {
        println!("open instructions: reusing {}", dir.display());
        None
    } else {
        println!("open instructions: filling {}", args.open_instructions);
        let t = Instant::now();
        open::fill(&dir.join("data"), file, args.open_instructions).await?;
        std::fs::write(dir.join("filled"), b"")?;
        Some(t.elapsed().as_secs_f64())
    };
    open::measure(setup, &dir.join("data"), args.open_instructions, fill_secs).await
}
