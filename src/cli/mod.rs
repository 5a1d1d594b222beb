//! The client commands of the `stophub` binary: `police`, `bank` and `oversight`.
//!
//! This module owns the command-line surface of the three client roles (flags, their
//! environment fallbacks, help texts), turning flags into gRPC requests, the human and
//! `--json` output ([`render`]), RFC 3339 handling ([`time`]), the simulated bank of
//! `bank listen --auto-ack`, an institution's local mirror of the account blacklist
//! ([`mirror`], kept by `bank sync` ([`sync`]) and read by `bank check --mirror`), and the
//! mapping of outcomes to exit codes. The connection itself is [`crate::client`].
//!
//! Exit codes, for every client command:
//! - 0: success.
//! - 1: local failure: a file cannot be read, the hub cannot be reached, output cannot be
//!   written.
//! - 2: usage error: a flag is missing or malformed (reported by clap, or by the command
//!   when only it can tell, e.g. a document number's check character for `bank check
//!   --mirror`).
//! - 3: the hub refused the request: any non-OK gRPC status, printed to stderr as
//!   `stophub: refused: <CODE>: <message>` (e.g. `INVALID_ARGUMENT`, `PERMISSION_DENIED`).

pub mod audit;
mod bank;
mod mirror;
mod oversight;
mod police;
mod render;
pub mod scenario;
mod sim;
mod sync;
pub(crate) mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::certs;
use crate::client::{self, ClientTls};
use crate::clock::{Clock, SystemClock};
use crate::proto::stophub::common::v1 as pb;
use render::DocTypeName;

pub use bank::BankArgs;
pub use oversight::OversightArgs;
pub use police::PoliceArgs;

/// The exit codes, as a literal so that help texts can `concat!` it.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  local failure (cannot read a file, cannot reach the hub)
  2  usage error (bad or missing flags)
  3  the hub refused the request (printed as `stophub: refused: <CODE>: <message>`)
  4  the audit chain is broken (`oversight verify`, `audit verify`)"
    };
}
use exit_codes;

/// Shown at the end of every client command's `--help`.
const EXIT_CODES: &str = exit_codes!();

/// How to reach the hub and who to be: shared by every client command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection and output")]
pub struct Conn {
    /// The hub's address.
    #[arg(
        long,
        global = true,
        env = "STOPHUB_HUB",
        default_value = "https://localhost:50051"
    )]
    hub: String,
    /// CA certificate the hub's certificate must chain to [default: <certs-dir>/ca.pem].
    #[arg(long, global = true, env = "STOPHUB_CA")]
    ca: Option<PathBuf>,
    /// This client's certificate [default: <certs-dir>/<role>-<org>.pem].
    #[arg(long, global = true, env = "STOPHUB_CLIENT_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// This client's private key [default: <certs-dir>/<role>-<org>-key.pem].
    #[arg(long, global = true, env = "STOPHUB_CLIENT_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// Organisation whose development certificate to use when --cert/--key are not given
    /// [default: PSB-SZ for police, ICBC for bank, PBOC for oversight].
    #[arg(long, global = true, env = "STOPHUB_ORG")]
    org: Option<String>,
    /// Directory of development certificates (as written by `stophub certs dev`).
    #[arg(
        long,
        global = true,
        env = "STOPHUB_CERTS_DIR",
        default_value = "certs"
    )]
    certs_dir: PathBuf,
    /// Name the hub's certificate must carry.
    #[arg(
        long,
        global = true,
        env = "STOPHUB_SERVER_NAME",
        default_value = "localhost"
    )]
    server_name: String,
    /// Machine-readable output: one JSON object per line.
    #[arg(long, global = true, env = "STOPHUB_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    json: bool,
}

impl Conn {
    /// The TLS material for `role`, defaulting to the dev certificate of `default_org`.
    fn tls(&self, role: &str, default_org: &str) -> anyhow::Result<ClientTls> {
        let stem = certs::client_stem(role, self.org.as_deref().unwrap_or(default_org));
        let dev = |suffix: &str| self.certs_dir.join(format!("{stem}{suffix}.pem"));
        let ca = self
            .ca
            .clone()
            .unwrap_or_else(|| self.certs_dir.join(certs::CA_CERT_FILE));
        let cert = self.cert.clone().unwrap_or_else(|| dev(""));
        let key = self.key.clone().unwrap_or_else(|| dev("-key"));
        ClientTls::from_files(&ca, &cert, &key, &self.server_name)
            .map_err(|e| anyhow::anyhow!(one_line(&e)))
    }

    /// Connects as `role` (`police`, `bank` or `oversight`).
    async fn channel(&self, role: &str, default_org: &str) -> anyhow::Result<Channel> {
        let tls = self.tls(role, default_org)?;
        client::connect(&self.hub, &tls).await.map_err(|e| {
            anyhow::anyhow!(
                "{} (as {role}; check --hub, --server-name, --ca, --cert/--key or --org)",
                one_line(&e)
            )
        })
    }

    fn out(&self) -> render::Out {
        render::Out { json: self.json }
    }
}

/// Who a blacklist command is about: the identity document that names the subject.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubjectArgs {
    /// The identity document: resident-id (居民身份证), passport, or uscc (统一社会信用代码,
    /// which names a unit).
    #[arg(long, value_enum, value_name = "TYPE", ignore_case = true)]
    doc_type: DocTypeName,
    /// The document number as printed; the hub normalises it (upper case, ASCII digits).
    #[arg(long, value_name = "NUMBER")]
    doc_number: String,
}

impl SubjectArgs {
    fn to_proto(&self) -> pb::SubjectRef {
        pb::SubjectRef {
            document_type: self.doc_type.to_proto() as i32,
            document_number: self.doc_number.clone(),
        }
    }
}

/// `cli-<unix millis>-<pid>`: unique enough for a person at a terminal. Scripts that may
/// retry should pass their own `--request-id`.
fn default_request_id() -> String {
    format!("cli-{}-{}", SystemClock.now().millis(), std::process::id())
}

/// An error and its sources on one line, skipping sources whose text the line already
/// holds (the client and transport errors print their source themselves).
fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        source = e.source();
    }
    line
}

/// `stophub police ...`
pub async fn police(args: PoliceArgs) -> anyhow::Result<ExitCode> {
    finish(police::run(args).await)
}

/// `stophub bank ...`
pub async fn bank(args: BankArgs) -> anyhow::Result<ExitCode> {
    finish(bank::run(args).await)
}

/// `stophub oversight ...`
pub async fn oversight(args: OversightArgs) -> anyhow::Result<ExitCode> {
    finish(oversight::run(args).await)
}

/// A malformed flag value that only a command, not clap, can see (e.g. a document number's
/// check character for `bank check --mirror`): exit 2 like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(String);

/// Maps a command's result to its exit code: a hub refusal (a gRPC status anywhere in the
/// error chain) is reported here as exit 3, a [`UsageError`] as exit 2; any other error goes
/// back to `main` (exit 1).
fn finish(result: anyhow::Result<()>) -> anyhow::Result<ExitCode> {
    let Err(error) = result else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(usage) = error.downcast_ref::<UsageError>() {
        eprintln!("stophub: {usage}");
        return Ok(ExitCode::from(2));
    }
    match error.downcast_ref::<Status>() {
        Some(status) => {
            eprintln!("stophub: refused: {}", status_line(status));
            Ok(ExitCode::from(3))
        }
        None => Err(error),
    }
}

/// `<CODE>: <message>`, e.g. `INVALID_ARGUMENT: victim_transfer.amount_fen: must be > 0`.
fn status_line(status: &Status) -> String {
    format!("{}: {}", code_name(status.code()), status.message())
}

/// The canonical gRPC name of a status code, e.g. `INVALID_ARGUMENT`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_exit_3_and_local_failures_go_back_to_main() {
        assert_eq!(finish(Ok(())).unwrap(), ExitCode::SUCCESS);
        let refused = anyhow::Error::from(Status::invalid_argument("amount_fen: must be > 0"));
        assert_eq!(
            finish(Err(refused.context("submit"))).unwrap(),
            ExitCode::from(3)
        );
        assert!(finish(Err(anyhow::anyhow!("cannot read certs/ca.pem"))).is_err());
        let usage = anyhow::Error::from(UsageError("--doc-number: bad".into()));
        assert_eq!(finish(Err(usage)).unwrap(), ExitCode::from(2));
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Debug, clap::Subcommand)]
    enum TestCommand {
        Police(PoliceArgs),
        Bank(BankArgs),
        Oversight(OversightArgs),
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::{CommandFactory, Parser};
        TestCli::command().debug_assert();
        // Connection flags are accepted before and after the subcommand.
        let cli = TestCli::try_parse_from([
            "t",
            "bank",
            "--org",
            "CCB",
            "listen",
            "--hub",
            "https://h:1",
            "--json",
        ])
        .unwrap();
        let TestCommand::Bank(bank) = cli.command else {
            panic!("bank expected")
        };
        assert_eq!(
            (
                bank.conn.org.as_deref(),
                bank.conn.hub.as_str(),
                bank.conn.json
            ),
            (Some("CCB"), "https://h:1", true)
        );
        let tls = bank.conn.tls("bank", "ICBC").unwrap_err().to_string();
        assert!(tls.contains("certs/ca.pem"), "{tls}");
        assert!(TestCli::try_parse_from(["t", "police", "submit", "--case", "C"]).is_err());
        assert!(
            TestCli::try_parse_from(["t", "police", "submit", "--file", "n.json", "--case", "C"])
                .is_err()
        );
        assert!(
            TestCli::try_parse_from([
                "t",
                "police",
                "submit",
                "--file",
                "n.json",
                "--request-id",
                "r1"
            ])
            .is_ok()
        );
        assert!(
            TestCli::try_parse_from([
                "t",
                "oversight",
                "list",
                "--state",
                "executed,account-not-found",
                "--all"
            ])
            .is_ok()
        );
        assert!(TestCli::try_parse_from(["t", "oversight", "list", "--state", "done"]).is_err());
        assert!(
            TestCli::try_parse_from(["t", "oversight", "list", "--state", "queued,lapsed"]).is_ok()
        );
        assert!(
            TestCli::try_parse_from([
                "t",
                "oversight",
                "expiring",
                "--within-hours",
                "8760",
                "--action",
                "stop",
                "--action",
                "freeze"
            ])
            .is_ok()
        );
        assert!(
            TestCli::try_parse_from(["t", "oversight", "expiring", "--action", "release"]).is_err()
        );
        assert!(
            TestCli::try_parse_from(["t", "oversight", "graph", "--agency", "PSB-SZ", "SZ-1"])
                .is_ok()
        );
        assert!(TestCli::try_parse_from(["t", "oversight", "graph", "SZ-1"]).is_err());
        // The blacklist commands.
        let subject = [
            "--doc-type",
            "resident-id",
            "--doc-number",
            "11010519491231002X",
        ];
        let parses = |head: &[&str], tail: &[&str]| {
            let argv = ["t"]
                .iter()
                .chain(head)
                .chain(subject.iter())
                .chain(tail)
                .copied()
                .collect::<Vec<_>>();
            TestCli::try_parse_from(argv).is_ok()
        };
        assert!(parses(
            &["police", "list-subject"],
            &["--basis", "B", "--case", "C"]
        ));
        assert!(parses(&["police", "delist"], &["--reason", "error"]));
        assert!(parses(&["bank", "check"], &["--mirror", "m.json"]));
        assert!(parses(&["oversight", "listing"], &[]));
        assert!(parses(
            &["oversight", "appeal", "record"],
            &["--grounds", "g"]
        ));
        assert!(
            TestCli::try_parse_from([
                "t",
                "bank",
                "sync",
                "--out",
                "m.json",
                "--exit-after-snapshot"
            ])
            .is_ok()
        );
    }
}
