//! `stophub bench-blacklist`: the blacklist at scale. Fills a store with N listed subjects,
//! starts the real hub (`stophub serve`, a child process) over it, and measures through the
//! gRPC API over mutual TLS: start-up time, CheckSubject throughput and latency, a full
//! snapshot streamed to a syncing bank (and the latency of checks made meanwhile, to show it
//! does not stall other work), and the hub's resident memory before and after.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::client::{self, ClientTls};
use crate::clock::{Clock, SystemClock};
use crate::domain::blacklist::{BasisTable, DocumentType, Entry, ListingState, Subject};
use crate::participants;
use crate::proto::stophub::bank::v1::{CheckSubjectRequest, SyncBlacklistRequest, SyncKind};
use crate::proto::stophub::common::v1 as pb;
use crate::store::{Store, TreeId, Writes};

#[derive(Debug, Clone, Args)]
pub struct BlacklistBenchArgs {
    /// Listed subjects to create.
    #[arg(long, env = "STOPHUB_BENCH_ENTRIES", default_value_t = 10_000_000)]
    pub entries: u64,
    /// Seconds of CheckSubject load.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent checks in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections the checks are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Reuse a store filled by an earlier run (its directory), instead of filling a new one.
    #[arg(long)]
    pub reuse: Option<std::path::PathBuf>,
}

fn subject(n: u64) -> Subject {
    Subject {
        document_type: DocumentType::Passport,
        number: format!("P{n:011}"),
    }
}

fn fill(dir: &Path, n: u64) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let table = BasisTable::default();
    let basis = &table.bases[0];
    let now = SystemClock.now();
    let expires = crate::domain::policy::add_months(now, basis.term_months);
    let mut i = 0;
    let started = Instant::now();
    while i < n {
        let mut w = Writes::default();
        for _ in 0..20_000.min(n - i) {
            let s = subject(i);
            let entry = Entry {
                subject: s.clone(),
                subject_name: String::new(),
                state: ListingState::Listed,
                basis: basis.code.clone(),
                table_version: table.version.clone(),
                effects: basis.effects,
                listed_by: "PSB-SZ".into(),
                case_reference: "BENCH".into(),
                listed_at: now,
                consecutive_since: now,
                expires_at: expires,
                version: i + 1,
                removal_reason: String::new(),
            };
            w.put(TreeId::Blacklist, s.key().into_bytes(), &entry);
            i += 1;
        }
        store.commit(&w)?;
        if i % 1_000_000 == 0 {
            eprintln!("  filled {i} in {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    store.sync()?;
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize] as f64 / 1000.0
}

/// Runs checks until `until`, returning latencies in microseconds.
async fn checks(
    channels: &[tonic::transport::Channel],
    concurrency: usize,
    entries: u64,
    until: Instant,
    stop: Option<Arc<AtomicU64>>,
) -> Vec<u64> {
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut bank = client::bank(channels[w % channels.len()].clone());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut x = (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            while Instant::now() < until
                && stop.as_ref().is_none_or(|s| s.load(Ordering::Relaxed) == 0)
            {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half the subjects asked about are listed, half are not.
                let n = x % (entries * 2);
                let s = pb::SubjectRef {
                    document_type: pb::DocumentType::Passport as i32,
                    document_number: format!("P{n:011}"),
                };
                let t = Instant::now();
                if bank
                    .check_subject(CheckSubjectRequest { subjects: vec![s] })
                    .await
                    .is_ok()
                {
                    lat.push(t.elapsed().as_micros() as u64);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_unstable();
    all
}

pub async fn run(args: BlacklistBenchArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.reuse {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("temporary directory")?;
            let t = Instant::now();
            fill(&tmp.path().join("data"), args.entries)?;
            println!(
                "filled {} entries in {:.0} s",
                args.entries,
                t.elapsed().as_secs_f64()
            );
            tmp.path().to_owned()
        }
    };
    let certs = dir.join("certs");
    let file = participants::demo();
    crate::certs::mint_dev(&certs, &file, &[])?;
    std::fs::write(dir.join("participants.toml"), file.to_toml())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--metrics-listen",
            "off",
            "--checks-per-second",
            "1000000000",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--certs-dir")
        .arg(&certs)
        .arg("--participants")
        .arg(dir.join("participants.toml"))
        .env("RUST_LOG", "warn")
        .spawn()?;
    let pid = child.id();
    let tls = ClientTls::from_files(
        &certs.join("ca.pem"),
        &certs.join("bank-ICBC.pem"),
        &certs.join("bank-ICBC-key.pem"),
        "localhost",
    )?;
    let url = format!("https://127.0.0.1:{port}");
    let first = loop {
        if let Ok(c) = client::connect(&url, &tls).await {
            break c;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the hub did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "hub serving after {:.2} s over {} entries; resident memory {:.0} MiB",
        started.elapsed().as_secs_f64(),
        args.entries,
        super::rss_mib_of(pid)
    );
    let mut channels = vec![first];
    for _ in 1..args.connections.max(1) {
        channels.push(client::connect(&url, &tls).await?);
    }
    let entries = args.entries.max(1);
    // Steady checks.
    let t = Instant::now();
    let lat = checks(
        &channels,
        args.concurrency,
        entries,
        Instant::now() + Duration::from_secs(args.seconds),
        None,
    )
    .await;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "CheckSubject (1 subject, {} in flight): {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; hub memory {:.0} MiB",
        args.concurrency,
        lat.len() as f64 / secs,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        super::rss_mib_of(pid)
    );
    // A full snapshot to one syncing bank, with checks going on meanwhile.
    let done = Arc::new(AtomicU64::new(0));
    let background = {
        let channels = channels.clone();
        let done = done.clone();
        let concurrency = (args.concurrency / 4).max(1);
        tokio::spawn(async move {
            checks(
                &channels,
                concurrency,
                entries,
                Instant::now() + Duration::from_secs(3600),
                Some(done),
            )
            .await
        })
    };
    let mut sync_bank = client::bank(client::connect(&url, &tls).await?);
    let t = Instant::now();
    let mut stream = sync_bank
        .sync_blacklist(SyncBlacklistRequest { from_version: 0 })
        .await?
        .into_inner();
    let mut count = 0u64;
    let mut peak = 0f64;
    while let Some(m) = stream.message().await? {
        match SyncKind::try_from(m.kind) {
            Ok(SyncKind::SnapshotEntry) => {
                count += 1;
                if count % 1_000_000 == 0 {
                    peak = peak.max(super::rss_mib_of(pid));
                }
            }
            Ok(SyncKind::SnapshotEnd) => break,
            _ => {}
        }
    }
    let snap = t.elapsed().as_secs_f64();
    done.store(1, Ordering::Relaxed);
    let during = background.await.unwrap_or_default();
    println!(
        "snapshot: {count} entries in {snap:.1} s ({:.0}/s); checks meanwhile: {} done, p50 {:.2} ms, p99 {:.2} ms; hub memory peak {:.0} MiB, after {:.0} MiB",
        count as f64 / snap.max(1e-9),
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        peak.max(super::rss_mib_of(pid)),
        super::rss_mib_of(pid)
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    if let Some(keep) = &args.reuse {
        println!("store kept in {}", keep.display());
    }
    Ok(())
}
