//! The processes a benchmark measures: the real hub (`stophub serve`) or the echo server
//! (`stophub bench-echo-serve`) as child processes of the benchmark, so that their memory and
//! CPU time are their own; the participants and certificates of a run; /proc readings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::Channel;

use crate::client::{self, ClientTls};
use crate::participants::{
    Institution, InstitutionKind, OversightBody, ParticipantsFile, PoliceAgency, PoliceLevel,
};

/// The police agency every benchmark notice comes from.
pub const POLICE: &str = "PSB-SZ";

/// `banks` institutions (B001, B002, ...), one city-level police agency and one oversight body.
pub fn participants(banks: usize) -> ParticipantsFile {
    ParticipantsFile {
        institutions: (1..=banks.max(1))
            .map(|i| Institution {
                code: format!("B{i:03}"),
                name: format!("Bench Bank {i}"),
                kind: InstitutionKind::Bank,
            })
            .collect(),
        police: vec![PoliceAgency {
            code: POLICE.into(),
            name: "Bench police".into(),
            level: PoliceLevel::City,
        }],
        oversight: vec![OversightBody {
            code: "PBOC".into(),
            name: "Bench oversight".into(),
        }],
    }
}

/// Where a run's certificates and participants file are, and what the participants are.
#[derive(Debug, Clone)]
pub struct Setup {
    pub certs: PathBuf,
    pub participants_path: PathBuf,
    pub institutions: Vec<String>,
}

impl Setup {
    /// Mints certificates for `file` into `dir/certs` and writes `dir/participants.toml`.
    pub fn mint(dir: &Path, file: &ParticipantsFile) -> anyhow::Result<Setup> {
        let certs = dir.join("certs");
        crate::certs::mint_dev(&certs, file, &[])?;
        let participants_path = dir.join("participants.toml");
        std::fs::write(&participants_path, file.to_toml())?;
        Ok(Setup {
            certs,
            participants_path,
            institutions: file.institutions.iter().map(|i| i.code.clone()).collect(),
        })
    }

    /// The client TLS material of one participant.
    pub fn tls(&self, role: &str, org: &str) -> anyhow::Result<ClientTls> {
        Ok(ClientTls::dev(&self.certs, role, org)?)
    }
}

/// A server under measurement. Stopped (SIGTERM, then waited for) when dropped.
pub struct Server {
    pub url: String,
    pub pid: u32,
    child: Child,
}

impl Server {
    /// `stophub serve` over `data_dir`, with every limit opened up so that the benchmark
    /// measures the hub's work, not its throttles.
    pub fn hub(setup: &Setup, data_dir: &Path) -> anyhow::Result<Server> {
        Self::spawn("serve", setup, |cmd| {
            cmd.arg("--data-dir")
                .arg(data_dir)
                .arg("--participants")
                .arg(&setup.participants_path)
                .args(["--metrics-listen", "off", "--grace-secs", "2"])
                // Limits opened up: no per-caller rate (the police agency sends everything),
                // streams for every watch in flight, room for every unanswered benchmark
                // instruction, blacklist checks unthrottled; answer deadlines far away, so
                // that no overdue reminder fires while unanswered instructions pile up.
                .args(["--requests-per-second", "0"])
                .args(["--max-streams-per-caller", "1000000"])
                .args(["--max-backlog", "1000000000000"])
                .args(["--checks-per-second", "1000000000"])
                .args(["--stop-answer-secs", "2592000"]);
        })
    }

    /// `stophub bench-echo-serve` with the hub's certificate.
    pub fn echo(setup: &Setup) -> anyhow::Result<Server> {
        Self::spawn("bench-echo-serve", setup, |_| {})
    }

    /// This binary's `subcommand` on a free port with the run's certificates, plus `more`.
    fn spawn(
        subcommand: &str,
        setup: &Setup,
        more: impl FnOnce(&mut Command),
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg(subcommand)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--certs-dir")
            .arg(&setup.certs);
        more(&mut cmd);
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start the server process")?;
        Ok(Server {
            url: format!("https://127.0.0.1:{port}"),
            pid: child.id(),
            child,
        })
    }

    /// Waits until the hub answers its gRPC health check over mutual TLS; returns a channel.
    pub async fn wait_healthy(&self, tls: &ClientTls, within: Duration) -> anyhow::Result<Channel> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let started = Instant::now();
        loop {
            if let Ok(channel) = client::connect(&self.url, tls).await {
                let answer = HealthClient::new(channel.clone())
                    .check(HealthCheckRequest::default())
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                    return Ok(channel);
                }
            }
            anyhow::ensure!(
                started.elapsed() < within,
                "the server at {} did not serve within {within:?}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resident memory now and at its peak, MiB.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Resident memory of a process, MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        Memory {
            rss_mib: field("VmRSS:"),
            peak_mib: field("VmHWM:"),
        }
    }
}

/// User plus system CPU time of a process, seconds (Linux; 0 where /proc cannot tell).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it are plain.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / CLOCK_TICKS_PER_SEC
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (reading it needs libc, and unsafe).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
