//! The `stophub` binary: a shell around the library. Parse, init tracing, then either serve or
//! run one client command. Bad configuration prints one line and exits non-zero.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stophub::clock::SystemClock;
use stophub::config::ServeArgs;
use stophub::{certs, cli, participants, server};

/// mimalloc rather than glibc's malloc: allocation was a quarter of the hub's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "stophub",
    version,
    about = "Emergency stop-payment coordination hub: server and clients"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "STOPHUB_LOG_JSON", value_parser = clap::builder::BoolishValueParser::new(), default_missing_value = "true", num_args = 0..=1)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub.
    Serve(ServeArgs),
    /// Certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Police case system client: stops, freezes, renewals, releases, watches, case graphs.
    Police(cli::PoliceArgs),
    /// Bank client: listen for instructions and acknowledge them.
    Bank(cli::BankArgs),
    /// Oversight client: instructions, what expires soon, case graphs, the blacklist, appeals, the audit trail.
    Oversight(cli::OversightArgs),
    /// The audit chain of a stopped hub's data directory: verify it, export it.
    Audit(cli::audit::AuditArgs),
    /// Exit 0 when the hub answers its gRPC health check (for container health checks).
    Healthcheck(HealthcheckArgs),
    /// A police scenario for demos and the compose test: submit, watch, check every outcome.
    Scenario(cli::scenario::ScenarioArgs),
    /// The benchmark suite: echo ceiling, submissions, full cycles, latencies, CheckSubject,
    /// open instructions; writes BENCHMARKS.md (starts its own servers as child processes).
    Bench(stophub::bench::BenchArgs),
    /// Internal to `bench`: the bare echo server it measures its ceiling with.
    #[command(hide = true)]
    BenchEchoServe(stophub::bench::echo::EchoServeArgs),
    /// Measure the durable timers with many pending: fill, start-up time, memory, firing rate.
    BenchTimers(stophub::bench::timers::TimerBenchArgs),
    /// Measure the blacklist at scale: checks per second, a full snapshot, memory (starts its own hub).
    BenchBlacklist(stophub::bench::blacklist::BlacklistBenchArgs),
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Mint a development CA, the hub's certificate and a client certificate per participant.
    Dev {
        /// Output directory.
        #[arg(long, env = "STOPHUB_CERTS_DIR", default_value = "certs")]
        out: std::path::PathBuf,
        /// Participants file to mint client certificates for [default: the built-in demo participants].
        #[arg(long, env = "STOPHUB_PARTICIPANTS")]
        participants: Option<std::path::PathBuf>,
        /// Extra host names or IPs for the hub's certificate (localhost and 127.0.0.1 are always in).
        #[arg(long = "host", env = "STOPHUB_DEV_HOSTS", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Keep a set that is already there (a CA and the hub's certificate) instead of minting anew.
        #[arg(long)]
        if_missing: bool,
    },
}

fn init_tracing(json: bool, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal, not in files or container logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_) | Command::Certs { .. });
    init_tracing(cli.log_json, !serving);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stophub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
            Command::Certs {
                command:
                    CertsCommand::Dev {
                        out,
                        participants,
                        hosts,
                        if_missing,
                    },
            } => {
                if if_missing && certs::dev_set_present(&out) {
                    println!("kept the certificates in {}", out.display());
                    Ok(ExitCode::SUCCESS)
                } else {
                    certs_dev(&out, participants.as_deref(), &hosts).map(|()| ExitCode::SUCCESS)
                }
            }
            Command::Police(args) => cli::police(args).await,
            Command::Bank(args) => cli::bank(args).await,
            Command::Oversight(args) => cli::oversight(args).await,
            Command::Audit(args) => cli::audit::run(args),
            Command::Healthcheck(args) => healthcheck(args).await,
            Command::Scenario(args) => cli::scenario::run(args).await,
            Command::Bench(args) => stophub::bench::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::BenchEchoServe(args) => stophub::bench::echo::serve(args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::BenchTimers(args) => stophub::bench::timers::run(args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::BenchBlacklist(args) => stophub::bench::blacklist::run(args)
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stophub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, clap::Args)]
struct HealthcheckArgs {
    /// The hub's address.
    #[arg(long, env = "STOPHUB_HUB", default_value = "https://localhost:50051")]
    hub: String,
    /// Directory of the certificates: the CA and the client certificate below.
    #[arg(long, env = "STOPHUB_CERTS_DIR", default_value = "certs")]
    certs_dir: std::path::PathBuf,
    /// The client certificate's file stem in --certs-dir (any registered participant).
    #[arg(long, env = "STOPHUB_HEALTHCHECK_AS", default_value = "oversight-PBOC")]
    r#as: String,
    /// The name the hub's certificate must carry.
    #[arg(long, env = "STOPHUB_SERVER_NAME", default_value = "localhost")]
    server_name: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let dir = &args.certs_dir;
    let tls = stophub::client::ClientTls::from_files(
        &dir.join("ca.pem"),
        &dir.join(format!("{}.pem", args.r#as)),
        &dir.join(format!("{}-key.pem", args.r#as)),
        &args.server_name,
    )?;
    let check = async {
        let channel = stophub::client::connect(&args.hub, &tls).await?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner();
        anyhow::Ok(answer.status == ServingStatus::Serving as i32)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(args.timeout_secs), check).await {
        Ok(Ok(true)) => {
            println!("serving");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(false)) => {
            eprintln!("stophub: the hub answered but is not serving");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("no answer within {} s", args.timeout_secs),
    }
}

fn certs_dev(
    out: &std::path::Path,
    participants: Option<&std::path::Path>,
    hosts: &[String],
) -> anyhow::Result<()> {
    let file = match participants {
        Some(path) => participants::ParticipantsFile::load(path)?,
        None => participants::demo(),
    };
    let written = certs::mint_dev(out, &file, hosts)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let options = args.options().map_err(anyhow::Error::msg)?;
    if args.dev {
        if !options.participants.exists() {
            std::fs::write(&options.participants, participants::demo().to_toml())
                .with_context(|| format!("cannot write {}", options.participants.display()))?;
            tracing::info!(path = %options.participants.display(), "wrote the demo participants file");
        }
        if !certs::dev_set_present(&args.certs_dir) {
            let file = participants::ParticipantsFile::load(&options.participants)?;
            certs::mint_dev(&args.certs_dir, &file, &args.dev_hosts)?;
            tracing::info!(dir = %args.certs_dir.display(), "minted development certificates");
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::mem::drop(ctrl_c.await),
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    };
    server::run(
        listener,
        options,
        std::sync::Arc::new(SystemClock),
        shutdown,
    )
    .await?;
    Ok(())
}
