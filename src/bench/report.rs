//! The benchmark's results: progress lines while it runs, and `BENCHMARKS.md` at the end (the
//! machine, the date, the exact command, the targets met or missed, and a table per
//! measurement with each throughput as a share of the echo ceiling at the same concurrency).

use std::fmt::Write as _;
use std::path::Path;

use super::BenchArgs;
use super::child::Memory;
use super::load::{Latencies, Level};
use super::open::OpenReport;
use crate::clock::{Clock, SystemClock};

/// CheckSubject with many listed subjects.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub entries: u64,
    pub fill_secs: Option<f64>,
    pub start_secs: f64,
    pub levels: Vec<Level>,
    pub memory: Memory,
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Results {
    command: String,
    banks: usize,
    connections: usize,
    seconds: u64,
    rate: u64,
    latency_seconds: u64,
    pub echo: Vec<Level>,
    /// Per accounts-per-notice: a level per concurrency.
    pub submit: Vec<(usize, Vec<Level>)>,
    pub cycle: Vec<Level>,
    /// The submission at the highest concurrency, one account: its receive latencies and the
    /// instructions never received.
    pub saturation_submit: Option<(Level, Latencies, u64)>,
    /// The full cycle at the highest concurrency: receive and answer latencies.
    pub saturation_cycle: Option<(Level, Latencies, Latencies)>,
    pub fixed_rate: Option<(Level, Latencies, Latencies)>,
    pub flow_hub_memory: Memory,
    pub check: Option<CheckReport>,
    pub open: Option<OpenReport>,
}

impl Results {
    pub fn new(args: &BenchArgs, command: String) -> Results {
        Results {
            command,
            banks: args.banks,
            connections: args.connections,
            seconds: args.seconds,
            rate: args.rate,
            latency_seconds: args.latency_seconds,
            ..Results::default()
        }
    }

    fn echo_at(&self, concurrency: usize) -> Option<f64> {
        self.echo
            .iter()
            .find(|l| l.concurrency == concurrency)
            .map(Level::per_sec)
    }

    fn ratio(&self, level: &Level) -> String {
        match self.echo_at(level.concurrency) {
            Some(e) if e > 0.0 => format!("{:.2}", level.per_sec() / e),
            _ => "-".into(),
        }
    }

    /// The level at concurrency 64 (what the targets name), else the highest measured.
    fn at_64(levels: &[Level]) -> Option<&Level> {
        levels
            .iter()
            .find(|l| l.concurrency == 64)
            .or_else(|| levels.iter().max_by_key(|l| l.concurrency))
    }
}

pub fn print_level(what: &str, l: &Level) {
    println!(
        "  {what:>6} c={:<4} {:>9.0}/s  p50/p99/p999 {} ms  server {:.2} cores ({:.0} us/op)  client {:.2} cores  errors {}",
        l.concurrency,
        l.per_sec(),
        l.latency.quantiles(" / "),
        l.server_cores,
        l.server_us_per_op(),
        l.client_cores,
        l.errors
    );
}

pub fn print_latency(what: &str, l: &Latencies) {
    println!(
        "  {what}: {} samples, p50/p99/p999 {} ms",
        l.len(),
        l.quantiles(" / ")
    );
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, v)| v.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1_048_576.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or("unknown".into(), |o| {
                String::from_utf8_lossy(&o.stdout).trim().to_owned()
            })
    };
    let profile = if cfg!(debug_assertions) {
        "debug (figures not meaningful: build with --release)"
    } else {
        "release"
    };
    format!(
        "- CPU: {cpu}, {cores} cores available\n- Memory: {mem_gib:.1} GiB\n- Kernel: Linux {kernel}\n- Rust: {}\n- stophub: {} ({profile} build)\n",
        run("rustc", &["--version"]),
        run(
            "git",
            &[
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "describe",
                "--always",
                "--dirty"
            ]
        ),
    )
}

fn level_table(out: &mut String, r: &Results, levels: &[Level], unit: &str, per_op: f64) {
    let _ = writeln!(
        out,
        "| in flight | {unit}/s | ratio to echo | p50 ms | p99 ms | p999 ms | server CPU (cores) | server CPU per {unit} | client CPU (cores) | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for l in levels {
        let _ = writeln!(
            out,
            "| {} | {:.0}{} | {} | {} | {:.2} | {:.0} µs | {:.2} | {} |",
            l.concurrency,
            l.per_sec(),
            if per_op > 1.0 {
                format!(" ({:.0} instructions/s)", l.per_sec() * per_op)
            } else {
                String::new()
            },
            r.ratio(l),
            l.latency.quantiles(" | "),
            l.server_cores,
            l.server_us_per_op(),
            l.client_cores,
            l.errors
        );
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn targets(out: &mut String, r: &Results) {
    let _ = writeln!(out, "| Target | Measured | |\n|---|---|---|");
    let mut row = |what: &str, measured: String, ok: bool| {
        let _ = writeln!(out, "| {what} | {measured} | {} |", met(ok));
    };
    let share = |levels: &[Level]| {
        Results::at_64(levels).and_then(|l| {
            r.echo_at(l.concurrency)
                .map(|e| (l.concurrency, l.per_sec(), l.per_sec() / e.max(1e-9)))
        })
    };
    if let Some((c, v, s)) = r
        .submit
        .iter()
        .find(|(a, _)| *a == 1)
        .and_then(|(_, l)| share(l))
    {
        row(
            "durable submissions at 64 in flight >= 1/2 of echo",
            format!("{v:.0}/s at {c} = {s:.2} of echo"),
            s >= 0.5,
        );
    }
    if let Some((c, v, s)) = share(&r.cycle) {
        row(
            "full cycles at 64 in flight >= 1/3 of echo",
            format!("{v:.0}/s at {c} = {s:.2} of echo"),
            s >= 1.0 / 3.0,
        );
    }
    if let Some((l, rx, _)) = &r.fixed_rate {
        row(
            &format!(
                "submit -> receive p99 <= 2 ms at {}/s with {} banks",
                r.rate, r.banks
            ),
            format!("{:.3} ms (achieved {:.0}/s)", rx.ms(0.99), l.per_sec()),
            rx.ms(0.99) <= 2.0 && !rx.is_empty(),
        );
    }
    if let Some(c) = &r.check
        && let Some((at, v, s)) = share(&c.levels)
    {
        row(
            &format!("CheckSubject >= 70% of echo ({} listed)", c.entries),
            format!("{v:.0}/s at {at} = {s:.2} of echo"),
            s >= 0.7,
        );
    }
    if let Some(o) = &r.open {
        row(
            &format!(
                "start to serving <= 5 s ({} open instructions)",
                o.instructions
            ),
            format!("{:.2} s", o.start_secs),
            o.start_secs <= 5.0,
        );
        let peak = o.after_replay.peak_mib.max(o.serving.peak_mib);
        row(
            &format!("hub memory <= 1 GiB ({} open instructions)", o.instructions),
            format!(
                "{:.0} MiB serving, {:.0} MiB peak through the replay",
                o.serving.rss_mib, peak
            ),
            peak <= 1024.0,
        );
    }
}

fn latency_row(out: &mut String, what: &str, l: &Level, rx: &Latencies, ack: Option<&Latencies>) {
    let ack = ack.map_or("- | - | -".into(), |a| a.quantiles(" | "));
    let _ = writeln!(
        out,
        "| {what} | {:.0} | {} | {ack} | {} |",
        l.per_sec(),
        rx.quantiles(" | "),
        rx.len()
    );
}

fn store_note(fill_secs: Option<f64>, how: &str) -> String {
    fill_secs.map_or("reused from an earlier run".into(), |s| {
        format!("{how} in {s:.0} s")
    })
}

pub fn write(path: &Path, r: &Results) -> anyhow::Result<()> {
    let mut out = String::new();
    let date = crate::cli::time::format(&crate::service::convert::timestamp_to_proto(
        SystemClock.now(),
    ));
    let _ = writeln!(
        out,
        "# Benchmarks\n\nWritten by `stophub bench` on {date}. Client (load generator, simulated banks, police) and servers share the machine's cores; each server is a child process, so its CPU and memory are its own.\n\n## Machine\n\n{}\n## Command\n\n```sh\n{}\n```\n\n{} simulated banks, each subscribed over its own mutual-TLS connection with its own certificate; police, echo and check load over {} connections; {} s measured per level after a warm-up.\n",
        machine(),
        r.command,
        r.banks,
        r.connections,
        r.seconds
    );
    out.push_str("## Targets\n\n");
    targets(&mut out, r);
    out.push_str("\n## Ceiling: bare tonic unary echo\n\n300-byte payload, the hub's own TLS setup (certificates, server TLS and transport settings, client connection), no handler work.\n\n");
    level_table(&mut out, r, &r.echo, "call", 1.0);
    for (accounts, levels) in &r.submit {
        let _ = writeln!(
            out,
            "\n## Durable SubmitNotice, {accounts} suspect account(s) per notice\n\nAnswered once the notice and its instructions are synced to disk (group commit); every bank subscribed and receiving.\n"
        );
        level_table(&mut out, r, levels, "notice", *accounts as f64);
    }
    if !r.cycle.is_empty() {
        out.push_str("\n## Full cycle\n\nSubmit one notice, open its police watch, the bank receives the instruction and acknowledges it (once the watch is open), the watch sees the answer. Latency is the whole cycle.\n\n");
        level_table(&mut out, r, &r.cycle, "cycle", 1.0);
    }
    out.push_str("\n## Latencies\n\nSubmit -> receive: from just before the notice is sent to the bank reading the instruction off its stream. Acknowledgement -> watch: from just before the bank sends its answer to the police watch reading it. One process, one monotonic clock.\n\n| Load | notices/s achieved | submit -> receive p50 ms | p99 ms | p999 ms | ack -> watch p50 ms | p99 ms | p999 ms | samples |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut rows: Vec<(String, &Level, &Latencies, Option<&Latencies>)> = Vec::new();
    if let Some((l, rx, ack)) = &r.fixed_rate {
        let what = format!(
            "full cycles offered at {}/s for {} s (open loop)",
            r.rate, r.latency_seconds
        );
        rows.push((what, l, rx, Some(ack)));
    }
    if let Some((l, rx, ack)) = &r.saturation_cycle {
        let what = format!("saturation: full cycles, {} in flight", l.concurrency);
        rows.push((what, l, rx, Some(ack)));
    }
    if let Some((l, rx, _)) = &r.saturation_submit {
        let what = format!("saturation: submissions only, {} in flight", l.concurrency);
        rows.push((what, l, rx, None));
    }
    for (what, l, rx, ack) in rows {
        latency_row(&mut out, &what, l, rx, ack);
    }
    if let Some((_, _, missing)) = &r.saturation_submit {
        if *missing > 0 {
            let _ = writeln!(
                out,
                "\n{missing} instructions of that run were not received within 60 s."
            );
        }
    }
    let _ = writeln!(
        out,
        "\nHub memory after these runs: {:.0} MiB resident, {:.0} MiB peak.",
        r.flow_hub_memory.rss_mib, r.flow_hub_memory.peak_mib
    );
    if let Some(c) = &r.check {
        let _ = writeln!(
            out,
            "\n## CheckSubject with {} listed subjects\n\nOne subject per call, half of them listed; checks spread over the banks' certificates. Store {}; hub serving {:.2} s after start; hub memory {:.0} MiB resident, {:.0} MiB peak.\n",
            c.entries,
            store_note(c.fill_secs, "filled"),
            c.start_secs,
            c.memory.rss_mib,
            c.memory.peak_mib
        );
        level_table(&mut out, r, &c.levels, "check", 1.0);
    }
    if let Some(o) = &r.open {
        let _ = writeln!(
            out,
            "\n## {} open instructions\n\n| What | Figure |\n|---|---|",
            o.instructions
        );
        let rows = [
            (
                "store".to_owned(),
                store_note(o.fill_secs, "filled through the hub's writer"),
            ),
            (
                "start to serving (process start to the first health check answered over mutual TLS)".into(),
                format!("{:.2} s", o.start_secs),
            ),
            (
                "hub memory when serving".into(),
                format!("{:.0} MiB resident", o.serving.rss_mib),
            ),
            (
                format!("replay to {} subscribing banks", r.banks),
                format!(
                    "{} instructions in {:.1} s ({:.0}/s)",
                    o.replayed,
                    o.replay_secs,
                    o.replayed as f64 / o.replay_secs.max(1e-9)
                ),
            ),
            (
                "hub memory after the replay".into(),
                format!(
                    "{:.0} MiB resident, {:.0} MiB peak",
                    o.after_replay.rss_mib, o.after_replay.peak_mib
                ),
            ),
        ];
        for (what, figure) in rows {
            let _ = writeln!(out, "| {what} | {figure} |");
        }
    }
    std::fs::write(path, out)?;
    Ok(())
}
