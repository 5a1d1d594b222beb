//! `stophub bench`: durable `SubmitNotice` throughput and latency at several concurrencies,
//! through the real gRPC API over mutual TLS, with bank streams connected and draining.
//!
//! By default it starts a hub in-process on a temporary directory (system clock, real sled,
//! real fsync), so one command measures everything; `--hub` targets a running hub instead.
//! Client and hub share the machine's cores, as they do in every run here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod blacklist;
pub mod timers;

use anyhow::Context;
use clap::Args;
use tonic::transport::Channel;

use crate::client::{self, ClientTls};
use crate::clock::{Clock, SystemClock};
use crate::participants;
use crate::proto::stophub::bank::v1::SubscribeRequest;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1::SubmitNoticeRequest;
use crate::server::{self, ServeOptions, TlsFiles};
use crate::service::convert::timestamp_to_proto;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent in-flight submissions to measure, one level after another.
    #[arg(
        long,
        env = "STOPHUB_BENCH_CONCURRENCY",
        value_delimiter = ',',
        default_value = "1,16,64"
    )]
    pub concurrency: Vec<usize>,
    /// Suspect accounts per notice (spread over the registered institutions).
    #[arg(long, env = "STOPHUB_BENCH_ACCOUNTS", default_value_t = 1)]
    pub accounts: usize,
    /// Seconds to measure each level.
    #[arg(long, env = "STOPHUB_BENCH_SECONDS", default_value_t = 5)]
    pub seconds: u64,
    /// HTTP/2 connections the police load is spread over.
    #[arg(long, env = "STOPHUB_BENCH_CONNECTIONS", default_value_t = 4)]
    pub connections: usize,
    /// Target a running hub (e.g. https://localhost:50051) instead of starting one in-process;
    /// its certificates are read from --certs-dir.
    #[arg(long, env = "STOPHUB_BENCH_HUB")]
    pub hub: Option<String>,
    /// Certificates of the hub given by --hub.
    #[arg(long, env = "STOPHUB_CERTS_DIR", default_value = "certs")]
    pub certs_dir: PathBuf,
}

struct Target {
    url: String,
    certs: PathBuf,
    institutions: Vec<String>,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
}

async fn in_process() -> anyhow::Result<Target> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let file = participants::demo();
    let certs = dir.path().join("certs");
    crate::certs::mint_dev(&certs, &file, &[])?;
    let participants_path = dir.path().join("participants.toml");
    std::fs::write(&participants_path, file.to_toml())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let options = ServeOptions {
        data_dir: dir.path().join("data"),
        tls: TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join("server.pem"),
            key: certs.join("server-key.pem"),
        },
        participants: participants_path,
        hub: Default::default(),
        metrics_listen: None,
        grace: Duration::from_secs(5),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::run(
        listener,
        options,
        Arc::new(SystemClock),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Target {
        url: format!("https://127.0.0.1:{port}"),
        certs,
        institutions: file.institutions.iter().map(|i| i.code.clone()).collect(),
        _dir: Some(dir),
        stop: Some(stop),
        task: Some(task),
    })
}

async fn connect(target: &Target, role: &str, org: &str) -> anyhow::Result<Channel> {
    let tls = ClientTls::dev(&target.certs, role, org)?;
    for _ in 0..100 {
        if let Ok(channel) = client::connect(&target.url, &tls).await {
            return Ok(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(client::connect(&target.url, &tls).await?)
}

fn notice(run: u64, n: u64, accounts: usize, institutions: &[String]) -> SubmitNoticeRequest {
    let suspects = (0..accounts)
        .map(|a| {
            let institution = &institutions[(n as usize + a) % institutions.len()];
            let kind = if matches!(institution.as_str(), "ALIPAY" | "TENPAY") {
                pb::AccountKind::PaymentAccount
            } else {
                pb::AccountKind::BankAccount
            };
            pb::SuspectAccount {
                institution_code: institution.clone(),
                account_number: format!("62{run:06}{n:010}{a:03}"),
                account_name: "Bench Suspect".into(),
                account_kind: kind as i32,
                amount_fen: 10_000,
                ..Default::default()
            }
        })
        .collect();
    SubmitNoticeRequest {
        request_id: format!("bench-{run}-{n}"),
        case_reference: format!("BENCH-{run}"),
        action: pb::Action::StopPayment as i32,
        victim_transfer: Some(pb::VictimTransfer {
            institution_code: "CCB".into(),
            account_number: "6217000011112222".into(),
            account_name: "Bench Victim".into(),
            currency: "CNY".into(),
            amount_fen: 10_000,
            transfer_time: Some(timestamp_to_proto(SystemClock.now().plus_millis(-60_000))),
            transaction_reference: "BENCH-TX".into(),
        }),
        suspect_accounts: suspects,
        ..Default::default()
    }
}

/// Resident memory of process `pid`, in MiB (Linux; 0 where /proc cannot tell).
pub fn rss_mib_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let target = match &args.hub {
        None => in_process().await?,
        Some(url) => Target {
            url: url.clone(),
            certs: args.certs_dir.clone(),
            institutions: participants::demo()
                .institutions
                .iter()
                .map(|i| i.code.clone())
                .collect(),
            _dir: None,
            stop: None,
            task: None,
        },
    };
    // Every institution listens and drains its stream, as a live deployment would.
    let delivered = Arc::new(AtomicU64::new(0));
    for institution in &target.institutions {
        let mut bank = client::bank(connect(&target, "bank", institution).await?);
        let delivered = delivered.clone();
        tokio::spawn(async move {
            if let Ok(resp) = bank.subscribe(SubscribeRequest { after_sequence: 0 }).await {
                let mut stream = resp.into_inner();
                while let Ok(Some(_)) = stream.message().await {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&target, "police", "PSB-SZ").await?);
    }
    let run_id = SystemClock.now().millis() as u64 % 1_000_000;
    println!(
        "durable SubmitNotice, {} account(s) per notice, {} s per level, {} police connections, {} banks streaming",
        args.accounts,
        args.seconds,
        channels.len(),
        target.institutions.len()
    );
    println!(
        "{:>11} {:>12} {:>10} {:>10} {:>10}",
        "concurrency", "notices/s", "p50 ms", "p99 ms", "errors"
    );
    let counter = Arc::new(AtomicU64::new(0));
    for &c in &args.concurrency {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..c.max(1) {
            let mut police = client::police(channels[w % channels.len()].clone());
            let counter = counter.clone();
            let institutions = target.institutions.clone();
            let accounts = args.accounts;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let req = notice(run_id, n, accounts, &institutions);
                    let t = Instant::now();
                    match police.submit_notice(req).await {
                        Ok(_) => latencies.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await?;
            all.extend(l);
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        println!(
            "{:>11} {:>12.0} {:>10.2} {:>10.2} {:>10}",
            c,
            all.len() as f64 / elapsed,
            percentile(&all, 0.50) as f64 / 1000.0,
            percentile(&all, 0.99) as f64 / 1000.0,
            errors
        );
    }
    println!(
        "instructions delivered to bank streams: {}",
        delivered.load(Ordering::Relaxed)
    );
    if let (Some(stop), Some(task)) = (target.stop, target.task) {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(())
}
