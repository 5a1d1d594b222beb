//! `stophub police submit | get | watch`: the police case system's side of the hub.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;
use tonic::transport::Channel;

use super::{Conn, EXIT_CODES, exit_codes, render, time};
use crate::client;
use crate::clock::{Clock, SystemClock};
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1::police_service_client::PoliceServiceClient;
use crate::proto::stophub::police::v1::{
    GetNoticeRequest, SubmitNoticeRequest, WatchNoticeRequest,
};

const ROLE: &str = "police";
const DEFAULT_ORG: &str = "PSB-SZ";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct PoliceArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    command: PoliceCommand,
}

#[derive(Debug, Subcommand)]
enum PoliceCommand {
    /// Submit a notice: one stop-payment instruction per suspect account.
    #[command(after_help = EXIT_CODES, after_long_help = SUBMIT_LONG_HELP)]
    Submit(Box<SubmitArgs>),
    /// Show a notice and the current state of its instructions.
    #[command(after_help = EXIT_CODES)]
    Get {
        /// The notice id (`N...`) returned by `submit`.
        notice_id: String,
    },
    /// Follow a notice: print every state change until all its instructions are final.
    #[command(after_help = EXIT_CODES)]
    Watch {
        /// The notice id (`N...`) returned by `submit`.
        notice_id: String,
    },
}

/// The notice's particulars come either from flags or from `--file`.
#[derive(Debug, Args)]
struct SubmitArgs {
    /// Idempotency key, unique per agency (1-64 of A-Z a-z 0-9 - _ . :). Pass the same value
    /// to retry safely [default: generated from the time and process id].
    #[arg(long)]
    request_id: Option<String>,
    /// Read the notice from a JSON file instead of the notice flags (format: see --help).
    #[arg(long, value_name = "NOTICE.json", conflicts_with_all = NOTICE_FLAGS)]
    file: Option<PathBuf>,
    /// The police case reference.
    #[arg(long = "case", value_name = "REF", required_unless_present = "file")]
    case: Option<String>,
    /// Code of the victim's institution, e.g. CCB.
    #[arg(long, value_name = "CODE", required_unless_present = "file")]
    victim_institution: Option<String>,
    /// The victim's account number.
    #[arg(long, value_name = "NUMBER", required_unless_present = "file")]
    victim_account: Option<String>,
    /// The victim's account name.
    #[arg(long, value_name = "NAME", required_unless_present = "file")]
    victim_name: Option<String>,
    /// Amount the victim transferred, in fen (1 yuan = 100 fen).
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        required_unless_present = "file"
    )]
    amount_fen: Option<i64>,
    /// When the victim's transfer was made, RFC 3339 [default: now].
    #[arg(long, value_name = "RFC3339", value_parser = time::parse)]
    transfer_time: Option<prost_types::Timestamp>,
    /// The transfer's transaction reference at the victim's institution.
    #[arg(long, value_name = "REF", required_unless_present = "file")]
    transaction_ref: Option<String>,
    /// ISO 4217 currency code [default: CNY].
    #[arg(long)]
    currency: Option<String>,
    /// A suspect account; repeat for several. KIND is `bank` (default) or `payment`.
    #[arg(
        long = "suspect",
        value_name = "INST:ACCOUNT:NAME:AMOUNT_FEN[:KIND]",
        value_parser = parse_suspect,
        required_unless_present = "file"
    )]
    suspects: Vec<SuspectSpec>,
    /// After submitting, watch the notice until every instruction is final.
    #[arg(long)]
    watch: bool,
}

const SUBMIT_LONG_HELP: &str = concat!(
    "Example:
  stophub police submit --case SZ-2026-001 \\
    --victim-institution CCB --victim-account 6217000000000001 --victim-name 'Zhang San' \\
    --amount-fen 500000 --transaction-ref TX20261128001 \\
    --suspect 'ICBC:6222020200001234:Li Si:500000' --suspect 'ALIPAY:2088000000005678:Wang Wu:100000:payment'

Notice file (--file), JSON; request_id, currency, transfer_time and kind are optional:
  {\"request_id\": \"SZ-2026-001-1\", \"case\": \"SZ-2026-001\", \"currency\": \"CNY\",
   \"victim\": {\"institution\": \"CCB\", \"account\": \"6217000000000001\", \"name\": \"Zhang San\",
              \"amount_fen\": 500000, \"transfer_time\": \"2026-11-28T07:00:00Z\", \"transaction_ref\": \"TX1\"},
   \"suspects\": [{\"institution\": \"ICBC\", \"account\": \"6222020200001234\", \"name\": \"Li Si\",
                  \"amount_fen\": 500000, \"kind\": \"bank\"}]}

",
    exit_codes!()
);

const NOTICE_FLAGS: [&str; 9] = [
    "case",
    "victim_institution",
    "victim_account",
    "victim_name",
    "amount_fen",
    "transfer_time",
    "transaction_ref",
    "currency",
    "suspects",
];

/// A suspect account's kind, as `--suspect` and the notice file name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Bank,
    Payment,
}

impl Kind {
    fn to_proto(self) -> pb::AccountKind {
        match self {
            Kind::Bank => pb::AccountKind::BankAccount,
            Kind::Payment => pb::AccountKind::PaymentAccount,
        }
    }
}

/// One suspect account: a `--suspect` value or an entry of the file's `suspects`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspectSpec {
    institution: String,
    account: String,
    name: String,
    amount_fen: i64,
    #[serde(default)]
    kind: Kind,
}

/// The notice file: the same particulars as the flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeFile {
    request_id: Option<String>,
    case: String,
    currency: Option<String>,
    victim: VictimSpec,
    suspects: Vec<SuspectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VictimSpec {
    institution: String,
    account: String,
    name: String,
    amount_fen: i64,
    /// RFC 3339; now when absent.
    transfer_time: Option<String>,
    transaction_ref: String,
}

/// Parses `INST:ACCOUNT:NAME:AMOUNT_FEN[:bank|payment]`. The name may itself contain ':'
/// (the institution and account come first, the amount and kind last).
fn parse_suspect(s: &str) -> Result<SuspectSpec, String> {
    let usage = "expected INST:ACCOUNT:NAME:AMOUNT_FEN[:bank|payment], e.g. ICBC:6222020200001234:Li Si:500000";
    let mut parts: Vec<&str> = s.split(':').collect();
    let kind = match parts.last().map(|k| k.to_ascii_lowercase()) {
        Some(k) if k == "bank" => Some(Kind::Bank),
        Some(k) if k == "payment" => Some(Kind::Payment),
        _ => None,
    };
    if kind.is_some() {
        parts.pop();
    }
    if parts.len() < 4 {
        return Err(format!("{s:?}: {usage}"));
    }
    let amount = parts.pop().unwrap_or_default();
    let amount_fen = amount.trim().parse::<i64>().map_err(|_| {
        format!("{s:?}: AMOUNT_FEN {amount:?} is not a whole number of fen; {usage}")
    })?;
    let spec = SuspectSpec {
        institution: parts[0].trim().to_owned(),
        account: parts[1].trim().to_owned(),
        name: parts[2..].join(":").trim().to_owned(),
        amount_fen,
        kind: kind.unwrap_or_default(),
    };
    if spec.institution.is_empty() || spec.account.is_empty() || spec.name.is_empty() {
        return Err(format!(
            "{s:?}: INST, ACCOUNT and NAME must not be empty; {usage}"
        ));
    }
    Ok(spec)
}

pub async fn run(args: PoliceArgs) -> anyhow::Result<()> {
    let out = args.conn.out();
    match args.command {
        PoliceCommand::Submit(submit) => {
            // Read and check the notice before connecting, so that local mistakes show first.
            let request = build_request(&submit)?;
            let mut client = connect(&args.conn).await?;
            let notice_id = submit_notice(&mut client, request, out).await?;
            if submit.watch {
                watch(&mut client, notice_id, out).await?;
            }
            Ok(())
        }
        PoliceCommand::Get { notice_id } => {
            get(&mut connect(&args.conn).await?, notice_id, out).await
        }
        PoliceCommand::Watch { notice_id } => {
            watch(&mut connect(&args.conn).await?, notice_id, out).await
        }
    }
}

async fn connect(conn: &Conn) -> anyhow::Result<PoliceServiceClient<Channel>> {
    Ok(client::police(conn.channel(ROLE, DEFAULT_ORG).await?))
}

fn build_request(args: &SubmitArgs) -> anyhow::Result<SubmitNoticeRequest> {
    let file = match &args.file {
        Some(path) => read_notice_file(path)?,
        None => notice_from_flags(args)?,
    };
    let transfer_time = match &file.victim.transfer_time {
        Some(t) => time::parse(t)
            .map_err(anyhow::Error::msg)
            .context("victim.transfer_time")?,
        None => args.transfer_time.unwrap_or_else(time::now),
    };
    let request_id = args
        .request_id
        .clone()
        .or(file.request_id)
        .unwrap_or_else(default_request_id);
    let v = file.victim;
    Ok(SubmitNoticeRequest {
        request_id,
        case_reference: file.case,
        action: pb::Action::StopPayment as i32,
        victim_transfer: Some(pb::VictimTransfer {
            institution_code: v.institution,
            account_number: v.account,
            account_name: v.name,
            currency: file.currency.unwrap_or_else(|| "CNY".to_owned()),
            amount_fen: v.amount_fen,
            transfer_time: Some(transfer_time),
            transaction_reference: v.transaction_ref,
        }),
        suspect_accounts: file.suspects.into_iter().map(suspect_to_proto).collect(),
        ..Default::default()
    })
}

fn suspect_to_proto(s: SuspectSpec) -> pb::SuspectAccount {
    pb::SuspectAccount {
        institution_code: s.institution,
        account_number: s.account,
        account_name: s.name,
        account_kind: s.kind.to_proto() as i32,
        amount_fen: s.amount_fen,
        ..Default::default()
    }
}

fn read_notice_file(path: &Path) -> anyhow::Result<NoticeFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid notice file", path.display()))
}

/// The flags as a notice file; clap has already required every field when `--file` is absent.
fn notice_from_flags(args: &SubmitArgs) -> anyhow::Result<NoticeFile> {
    let need =
        |v: &Option<String>, flag: &str| v.clone().with_context(|| format!("--{flag} is required"));
    Ok(NoticeFile {
        request_id: None,
        case: need(&args.case, "case")?,
        currency: args.currency.clone(),
        victim: VictimSpec {
            institution: need(&args.victim_institution, "victim-institution")?,
            account: need(&args.victim_account, "victim-account")?,
            name: need(&args.victim_name, "victim-name")?,
            amount_fen: args.amount_fen.context("--amount-fen is required")?,
            transfer_time: None,
            transaction_ref: need(&args.transaction_ref, "transaction-ref")?,
        },
        suspects: args.suspects.clone(),
    })
}

/// `cli-<unix millis>-<pid>`: unique enough for a person at a terminal. Scripts that may
/// retry should pass their own `--request-id`.
fn default_request_id() -> String {
    format!("cli-{}-{}", SystemClock.now().millis(), std::process::id())
}

async fn submit_notice(
    client: &mut PoliceServiceClient<Channel>,
    request: SubmitNoticeRequest,
    out: render::Out,
) -> anyhow::Result<String> {
    let response = client.submit_notice(request).await?.into_inner();
    let notice = response
        .notice
        .context("the hub answered without a notice")?;
    let replayed = response.replayed;
    out.emit(
        || {
            let note = if replayed { "\n(replayed: this request was submitted before; nothing new was created)" } else { "" };
            format!("{}{note}", render::notice_lines(&notice))
        },
        || json!({ "event": "notice", "replayed": replayed, "notice": render::notice_json(&notice) }),
    )?;
    Ok(notice.notice_id)
}

async fn get(
    client: &mut PoliceServiceClient<Channel>,
    notice_id: String,
    out: render::Out,
) -> anyhow::Result<()> {
    let response = client
        .get_notice(GetNoticeRequest { notice_id })
        .await?
        .into_inner();
    let notice = response
        .notice
        .context("the hub answered without a notice")?;
    out.emit(
        || render::notice_lines(&notice),
        || json!({ "event": "notice", "notice": render::notice_json(&notice) }),
    )
}

async fn watch(
    client: &mut PoliceServiceClient<Channel>,
    notice_id: String,
    out: render::Out,
) -> anyhow::Result<()> {
    let mut stream = client
        .watch_notice(WatchNoticeRequest {
            notice_id,
            until_answered: false,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        let Some(instruction) = event.instruction else {
            continue;
        };
        let tag = if event.initial { "now   " } else { "change" };
        out.emit(
            || format!("{tag} {}", render::instruction_line(&instruction)),
            || json!({ "event": "watch", "initial": event.initial, "instruction": render::instruction_json(&instruction) }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        institution: &str,
        account: &str,
        name: &str,
        amount_fen: i64,
        kind: Kind,
    ) -> SuspectSpec {
        SuspectSpec {
            institution: institution.into(),
            account: account.into(),
            name: name.into(),
            amount_fen,
            kind,
        }
    }

    #[test]
    fn suspect_specs_parse() {
        assert_eq!(
            parse_suspect("ICBC:6222020200001234:Li Si:500000").unwrap(),
            spec("ICBC", "6222020200001234", "Li Si", 500_000, Kind::Bank)
        );
        assert_eq!(
            parse_suspect("ALIPAY:2088000000001:Wang Wu:100:payment").unwrap(),
            spec("ALIPAY", "2088000000001", "Wang Wu", 100, Kind::Payment)
        );
        assert_eq!(
            parse_suspect("CCB:621700001:Zhao: Liu:7:BANK").unwrap(),
            spec("CCB", "621700001", "Zhao: Liu", 7, Kind::Bank)
        );
        // The hub, not the CLI, decides that an amount must be positive.
        assert_eq!(parse_suspect("CCB:621700001:Zhao:0").unwrap().amount_fen, 0);
    }

    #[test]
    fn bad_suspect_specs_say_what_is_expected() {
        for bad in [
            "",
            "ICBC",
            "ICBC:622202:Li Si",
            "ICBC:622202:Li Si:payment",
            "::x:5",
            "ICBC:622202:Li Si:5.00",
        ] {
            let err = parse_suspect(bad).unwrap_err();
            assert!(err.contains("INST:ACCOUNT:NAME:AMOUNT_FEN"), "{bad}: {err}");
        }
        assert!(
            parse_suspect("ICBC:622202:Li Si:lots")
                .unwrap_err()
                .contains("AMOUNT_FEN \"lots\"")
        );
    }

    #[test]
    fn notice_file_parses_with_defaults() {
        let text = r#"{
            "case": "SZ-2026-001",
            "victim": {"institution": "CCB", "account": "6217000000000001", "name": "Zhang San",
                       "amount_fen": 500000, "transaction_ref": "TX1"},
            "suspects": [{"institution": "ICBC", "account": "6222020200001234", "name": "Li Si",
                          "amount_fen": 500000}]
        }"#;
        let file: NoticeFile = serde_json::from_str(text).unwrap();
        assert_eq!(file.suspects[0].kind, Kind::Bank);
        assert!(file.victim.transfer_time.is_none());
        assert!(serde_json::from_str::<NoticeFile>(&text.replace("\"case\"", "\"kase\"")).is_err());
    }
}
