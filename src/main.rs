//! The `stophub` binary: a shell around the library. Parse, init tracing, then either serve or
//! run one client command. Bad configuration prints one line and exits non-zero.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stophub::clock::SystemClock;
use stophub::config::ServeArgs;
use stophub::{certs, cli, participants, server};

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
    /// Measure durable submissions per second and their latency (starts its own hub by default).
    Bench(stophub::bench::BenchArgs),
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
    },
}

fn init_tracing(json: bool, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
                    },
            } => certs_dev(&out, participants.as_deref(), &hosts).map(|()| ExitCode::SUCCESS),
            Command::Police(args) => cli::police(args).await,
            Command::Bank(args) => cli::bank(args).await,
            Command::Oversight(args) => cli::oversight(args).await,
            Command::Audit(args) => cli::audit::run(args),
            Command::Bench(args) => stophub::bench::run(args).await.map(|()| ExitCode::SUCCESS),
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
