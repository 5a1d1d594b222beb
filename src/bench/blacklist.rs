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

use crate::client;
use crate::clock::{Clock, SystemClock};
use crate::domain::blacklist::{BasisTable, DocumentType, Entry, ListingState, Subject};
use crate::participants;
use crate::proto::stophub::bank::v1::{CheckSubjectRequest, SyncBlacklistRequest, SyncKind};
use crate::proto::stophub::common::v1 as pb;
use crate::store::{Store, TreeId};

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

/// Writes `n` listed subjects straight into the blacklist tree of a store at `dir`, in large
/// batches from every core: the entries the hub would write, the newest change and the count
/// in force (no timers or audit, which checks and snapshots do not read).
pub fn fill(dir: &Path, n: u64) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let table = BasisTable::default();
    let basis = &table.bases[0];
    let now = SystemClock.now();
    let expires = crate::domain::policy::add_months(now, basis.term_months);
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()) as u64;
    let tree = store.tree(TreeId::Blacklist);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (done, basis, table) = (&done, basis, &table);
                scope.spawn(move || -> anyhow::Result<()> {
                    let (from, to) = (n * t / threads, n * (t + 1) / threads);
                    let mut i = from;
                    while i < to {
                        let mut batch = sled::Batch::default();
                        let upto = (i + 20_000).min(to);
                        for k in i..upto {
                            let s = subject(k);
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
                                version: k + 1,
                                removal_reason: String::new(),
                            };
                            batch.insert(s.key().into_bytes(), crate::store::encode(&entry));
                        }
                        tree.apply_batch(batch)?;
                        let before = done.fetch_add(upto - i, Ordering::Relaxed);
                        if (before + upto - i) / 1_000_000 > before / 1_000_000 {
                            eprintln!(
                                "  filled {} in {:.0} s",
                                before + upto - i,
                                started.elapsed().as_secs_f64()
                            );
                        }
                        i = upto;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("a fill thread panicked"))?
        })
    })?;
    // The newest change and the count in force, as the hub keeps them, so that the hub's
    // blacklist version covers the entries (a snapshot sends entries up to that version).
    if n > 0 {
        let last = subject(n - 1);
        let mut w = crate::store::Writes::default();
        w.put(
            TreeId::BlacklistLog,
            n.to_be_bytes().to_vec(),
            &crate::store::BlacklistChange {
                version: n,
                kind: crate::domain::blacklist::ChangeKind::Listed,
                subject: last,
                effects: basis.effects,
                expires_at: expires,
            },
        );
        w.put_raw(
            TreeId::Meta,
            crate::hub::BLACKLIST_IN_FORCE.as_bytes().to_vec(),
            (n as i64).to_be_bytes().to_vec(),
        );
        store.commit(&w)?;
    }
    store.sync()?;
    Ok(())
}

/// One CheckSubject of one subject, picked from `seed`: half of those asked about are listed.
pub fn check_request(seed: u64, entries: u64) -> CheckSubjectRequest {
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let n = x % (entries.max(1) * 2);
    CheckSubjectRequest {
        subjects: vec![pb::SubjectRef {
            document_type: pb::DocumentType::Passport as i32,
            document_number: format!("P{n:011}"),
        }],
    }
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
            let mut n = (w as u64) << 40;
            while Instant::now() < until
                && stop.as_ref().is_none_or(|s| s.load(Ordering::Relaxed) == 0)
            {
                n += 1;
                let t = Instant::now();
                if bank.check_subject(check_request(n, entries)).await.is_ok() {
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
    let setup = super::child::Setup::mint(&dir, &participants::demo())?;
    let tls = setup.tls("bank", "ICBC")?;
    let started = Instant::now();
    let hub = super::child::Server::hub(&setup, &dir.join("data"))?;
    let pid = hub.pid;
    let url = hub.url.clone();
    let first = hub.wait_healthy(&tls, Duration::from_secs(120)).await?;
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
    let mut snapshot_version = 0;
    let mut peak = 0f64;
    while let Some(m) = stream.message().await? {
        match SyncKind::try_from(m.kind) {
            Ok(SyncKind::SnapshotEntry) => {
                count += 1;
                if count % 1_000_000 == 0 {
                    peak = peak.max(super::rss_mib_of(pid));
                }
            }
            Ok(SyncKind::SnapshotBegin) => snapshot_version = m.version,
            Ok(SyncKind::SnapshotEnd) => break,
            _ => {}
        }
    }
    let snap = t.elapsed().as_secs_f64();
    done.store(1, Ordering::Relaxed);
    let during = background.await.unwrap_or_default();
    println!(
        "snapshot at version {snapshot_version}: {count} entries in {snap:.1} s ({:.0}/s); checks meanwhile: {} done, p50 {:.2} ms, p99 {:.2} ms; hub memory peak {:.0} MiB, after {:.0} MiB",
        count as f64 / snap.max(1e-9),
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        peak.max(super::rss_mib_of(pid)),
        super::rss_mib_of(pid)
    );
    drop(hub);
    if let Some(keep) = &args.reuse {
        println!("store kept in {}", keep.display());
    }
    Ok(())
}
