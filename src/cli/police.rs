//! `stophub police submit | freeze | get | watch | renew | release | graph | list-subject |
//! delist`: the police case system's side of the hub.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::json;
use tonic::transport::Channel;

use super::render::ActionName;
use super::{Conn, EXIT_CODES, SubjectArgs, default_request_id, exit_codes, render, time};
use crate::client;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1::police_service_client::PoliceServiceClient;
use crate::proto::stophub::police::v1::{
    DelistSubjectRequest, FollowFunds, GetCaseGraphRequest, GetNoticeRequest, ListSubjectRequest,
    Notice, ReleaseRequest, RenewFreezeRequest, SubmitNoticeRequest, WatchEventKind,
    WatchNoticeRequest,
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
    /// Submit a notice: one stop-payment (or, with --action freeze, freeze) instruction per
    /// suspect account.
    #[command(after_help = EXIT_CODES, after_long_help = SUBMIT_LONG_HELP)]
    Submit(Box<SubmitArgs>),
    /// Submit a freeze notice: the same as `submit --action freeze`.
    #[command(after_help = EXIT_CODES, after_long_help = FREEZE_LONG_HELP)]
    Freeze(Box<NoticeArgs>),
    /// Show a notice and the current state of its instructions.
    #[command(after_help = EXIT_CODES)]
    Get {
        /// The notice id (`N...`) returned by `submit`.
        notice_id: String,
    },
    /// Follow a notice: print every state change (and freeze renewal reminders) until all its
    /// instructions are final, or answered with --until-answered.
    #[command(after_help = EXIT_CODES)]
    Watch {
        /// The notice id (`N...`) returned by `submit`.
        notice_id: String,
        /// End once every instruction is answered, instead of once every one is final (a stop
        /// or freeze in force is final only when it lapses or is released).
        #[arg(long)]
        until_answered: bool,
    },
    /// Renew a freeze (续冻): a renewal instruction to the institution holding the account.
    #[command(after_help = EXIT_CODES)]
    Renew(RenewArgs),
    /// Release a stop-payment or a freeze (解除止付 / 解冻).
    #[command(after_help = EXIT_CODES)]
    Release(ReleaseArgs),
    /// Show the fund-flow graph of one of this agency's cases: the accounts reached, and the
    /// onward transfers between them with what the hub did about each.
    #[command(after_help = EXIT_CODES)]
    Graph {
        /// The police case reference.
        case_reference: String,
    },
    /// Put a subject on the account blacklist (惩戒名单), or extend their listing; city-level
    /// agencies and above only.
    #[command(after_help = EXIT_CODES, after_long_help = LIST_SUBJECT_LONG_HELP)]
    ListSubject(ListSubjectArgs),
    /// Remove a listing this agency made, with a reason.
    #[command(after_help = EXIT_CODES)]
    Delist(DelistArgs),
}

#[derive(Debug, Args)]
struct ListSubjectArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// The subject's name (optional, 1-64 characters).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A legal-basis code from the hub's table; it sets the term and the effects.
    #[arg(long, value_name = "CODE")]
    basis: String,
    /// The police case reference.
    #[arg(long = "case", value_name = "REF")]
    case: String,
    /// Idempotency key, unique per agency. Pass the same value to retry safely [default:
    /// generated from the time and process id].
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, Args)]
struct DelistArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// Why (1-256 characters), e.g. "listed in error".
    #[arg(long, value_name = "TEXT")]
    reason: String,
}

const LIST_SUBJECT_LONG_HELP: &str = concat!(
    "Lists a subject who rents, lends, sells or buys accounts, or opened them by impersonation.
The legal basis (--basis) sets the term and the effects (non-counter business suspended,
payment accounts suspended, no new accounts); the hub's built-in table has
PBOC-2019-ACCOUNT-TRADING (five years), JPM-2024-CONVICTED (three) and JPM-2024-IDENTIFIED
(two), and an unknown code is refused with the list of known ones. Listing a subject already
listed extends the term under the basis, never beyond the basis's cap of consecutive years;
the answer says whether it did (a listing that would not end later is refused,
FAILED_PRECONDITION). Every institution learns of the listing at once (`stophub bank sync`,
`stophub bank check`). Only agencies registered at city level or above may list: others are
refused with PERMISSION_DENIED (exit 3).

Example:
  stophub police list-subject --doc-type resident-id --doc-number 11010519491231002X \\
    --name 'Zhang San' --basis PBOC-2019-ACCOUNT-TRADING --case SZ-2026-001 --request-id SZ-2026-001-L1

Remove the listing with `stophub police delist`.

",
    exit_codes!()
);

/// `submit`: the notice, and what to do with its accounts.
#[derive(Debug, Args)]
struct SubmitArgs {
    /// What to do with every suspect account: an emergency stop-payment, or a freeze (which
    /// needs a filed case: --case-number and --filed-at).
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = ActionName::Stop)]
    action: ActionName,
    #[command(flatten)]
    notice: NoticeArgs,
}

/// The notice's particulars come either from flags or from `--file`; shared by `submit` and
/// `freeze`.
#[derive(Debug, Args)]
struct NoticeArgs {
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
    /// When the victim's transfer was made, RFC 3339. Required: it is part of the notice, so a
    /// retry with the same --request-id must give the same time to be recognised as a retry.
    #[arg(long, value_name = "RFC3339", value_parser = time::parse, required_unless_present = "file")]
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
    /// The filed case number (立案); a freeze needs it, with --filed-at. The case filing is
    /// sent when either flag is given (the hub refuses an incomplete one).
    #[arg(long, value_name = "NUMBER", help_heading = "Freeze")]
    case_number: Option<String>,
    /// When the case was filed, RFC 3339; with --case-number.
    #[arg(long, value_name = "RFC3339", value_parser = time::parse, help_heading = "Freeze")]
    filed_at: Option<prost_types::Timestamp>,
    /// How a freeze holds the account: up to the amount (限额冻结), or no debits at all
    /// (只收不付) [default: amount].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Freeze")]
    freeze_mode: Option<FreezeModeArg>,
    /// The reference of the city-level approval that makes the case major (12-month freeze
    /// term); with --approved-by.
    #[arg(
        long,
        value_name = "REF",
        requires = "approved_by",
        help_heading = "Freeze"
    )]
    major_approval: Option<String>,
    /// Code of the city-level police agency that approved the major case.
    #[arg(
        long,
        value_name = "AGENCY",
        requires = "major_approval",
        help_heading = "Freeze"
    )]
    approved_by: Option<String>,
    /// The stop-payment instruction (`I...`) the freeze follows; set on every suspect
    /// account (each must be the account that stop was on).
    #[arg(long, value_name = "INSTRUCTION_ID", help_heading = "Freeze")]
    follows: Option<String>,
    /// Follow the money: when an answer reports onward transfers, the hub issues next-level
    /// stop-payments, down to level DEPTH (1-5; the named accounts are level 1)
    /// [default depth: the hub's, 3].
    #[arg(
        long,
        value_name = "DEPTH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "0"
    )]
    follow_funds: Option<u32>,
    /// After submitting, watch the notice until every instruction is final.
    #[arg(long)]
    watch: bool,
    /// With --watch: end once every instruction is answered (not final).
    #[arg(long, requires = "watch")]
    until_answered: bool,
}

/// `--freeze-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FreezeModeArg {
    /// Up to the amount (限额冻结).
    Amount,
    /// No debits at all, credits allowed (只收不付); the amount is the disputed amount.
    ReceiveOnly,
}

impl FreezeModeArg {
    fn to_proto(self) -> pb::FreezeMode {
        match self {
            FreezeModeArg::Amount => pb::FreezeMode::AmountLimited,
            FreezeModeArg::ReceiveOnly => pb::FreezeMode::ReceiveOnly,
        }
    }
}

#[derive(Debug, Args)]
struct RenewArgs {
    /// The freeze instruction id (`I...`) to renew.
    instruction_id: String,
    /// The new expiry, RFC 3339 [default: one full term after the current expiry].
    #[arg(long, value_name = "RFC3339", value_parser = time::parse)]
    until: Option<prost_types::Timestamp>,
    /// Idempotency key, unique per agency [default: generated from the time and process id].
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, Args)]
struct ReleaseArgs {
    /// The stop-payment or freeze instruction id (`I...`) to release.
    instruction_id: String,
    /// Why (1-256 characters), e.g. "funds shown to be unrelated".
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Idempotency key, unique per agency [default: generated from the time and process id].
    #[arg(long)]
    request_id: Option<String>,
}

const SUBMIT_LONG_HELP: &str = concat!(
    "Example:
  stophub police submit --case SZ-2026-001 \\
    --victim-institution CCB --victim-account 6217000000000001 --victim-name 'Zhang San' \\
    --amount-fen 500000 --transaction-ref TX20261128001 \\
    --suspect 'ICBC:6222020200001234:Li Si:500000' --suspect 'ALIPAY:2088000000005678:Wang Wu:100000:payment' \\
    --follow-funds --watch --until-answered

--follow-funds[=DEPTH] asks the hub to follow the money: onward transfers reported with an
answer become next-level stop-payments, which join the notice (and the watch).

Notice file (--file), JSON; request_id, currency and kind are optional. The
action, case filing, freeze, --follows and --follow-funds flags apply with --file too:
  {\"request_id\": \"SZ-2026-001-1\", \"case\": \"SZ-2026-001\", \"currency\": \"CNY\",
   \"victim\": {\"institution\": \"CCB\", \"account\": \"6217000000000001\", \"name\": \"Zhang San\",
              \"amount_fen\": 500000, \"transfer_time\": \"2026-11-28T07:00:00Z\", \"transaction_ref\": \"TX1\"},
   \"suspects\": [{\"institution\": \"ICBC\", \"account\": \"6222020200001234\", \"name\": \"Li Si\",
                  \"amount_fen\": 500000, \"kind\": \"bank\"}]}

",
    exit_codes!()
);

const FREEZE_LONG_HELP: &str = concat!(
    "A freeze needs a filed case (--case-number and --filed-at); without one the hub refuses
(FAILED_PRECONDITION, exit 3): use an emergency stop-payment before the case is filed.

Example: freeze the account a stop-payment (I000000000002) holds, for 6 months:
  stophub police freeze --case SZ-2026-001 --case-number SZ-LA-2026-77 --filed-at 2026-11-28T09:00:00+08:00 \\
    --victim-institution CCB --victim-account 6217000000000001 --victim-name 'Zhang San' \\
    --amount-fen 500000 --transaction-ref TX20261128001 \\
    --suspect 'ICBC:6222020200001234:Li Si:500000' --follows I000000000002

With --major-approval REF --approved-by PSB-SZ (a city-level agency) the term is 12 months.
Renew with `stophub police renew`, lift with `stophub police release`.

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
            submit_and_watch(&args.conn, &submit.notice, submit.action, out).await
        }
        PoliceCommand::Freeze(notice) => {
            submit_and_watch(&args.conn, &notice, ActionName::Freeze, out).await
        }
        PoliceCommand::Get { notice_id } => {
            get(&mut connect(&args.conn).await?, notice_id, out).await
        }
        PoliceCommand::Watch {
            notice_id,
            until_answered,
        } => {
            watch(
                &mut connect(&args.conn).await?,
                notice_id,
                until_answered,
                out,
            )
            .await
        }
        PoliceCommand::Renew(renew) => {
            let request = RenewFreezeRequest {
                request_id: renew.request_id.unwrap_or_else(default_request_id),
                instruction_id: renew.instruction_id,
                renew_until: renew.until,
            };
            let response = connect(&args.conn)
                .await?
                .renew_freeze(request)
                .await?
                .into_inner();
            print_notice(out, response.notice, response.replayed).map(drop)
        }
        PoliceCommand::Release(release) => {
            let request = ReleaseRequest {
                request_id: release.request_id.unwrap_or_else(default_request_id),
                instruction_id: release.instruction_id,
                reason: release.reason,
            };
            let response = connect(&args.conn)
                .await?
                .release(request)
                .await?
                .into_inner();
            print_notice(out, response.notice, response.replayed).map(drop)
        }
        PoliceCommand::Graph { case_reference } => {
            let response = connect(&args.conn)
                .await?
                .get_case_graph(GetCaseGraphRequest { case_reference })
                .await?
                .into_inner();
            let graph = response.graph.context("the hub answered without a graph")?;
            out.emit(
                || render::graph_lines(&graph),
                || json!({ "event": "graph", "graph": render::graph_json(&graph) }),
            )
        }
        PoliceCommand::ListSubject(list) => {
            let request = list_subject_request(list);
            let response = connect(&args.conn)
                .await?
                .list_subject(request)
                .await?
                .into_inner();
            let entry = response
                .entry
                .context("the hub answered without an entry")?;
            let (extended, replayed) = (response.extended, response.replayed);
            out.emit(
                || {
                    let how = if extended {
                        "yes: the subject was already listed; the term was extended"
                    } else {
                        "no: a new listing"
                    };
                    let note = if replayed { "\n(replayed: this request was submitted before; nothing new was done)" } else { "" };
                    format!("{}\n{:<18} {how}{note}", render::entry_detail(&entry), "extended")
                },
                || json!({ "event": "listing", "extended": extended, "replayed": replayed, "entry": render::entry_json(&entry) }),
            )
        }
        PoliceCommand::Delist(delist) => {
            let request = DelistSubjectRequest {
                subject: Some(delist.subject.to_proto()),
                reason: delist.reason,
            };
            let response = connect(&args.conn)
                .await?
                .delist_subject(request)
                .await?
                .into_inner();
            let entry = response
                .entry
                .context("the hub answered without an entry")?;
            out.emit(
                || render::entry_detail(&entry),
                || json!({ "event": "listing", "entry": render::entry_json(&entry) }),
            )
        }
    }
}

fn list_subject_request(args: ListSubjectArgs) -> ListSubjectRequest {
    ListSubjectRequest {
        request_id: args.request_id.unwrap_or_else(default_request_id),
        subject: Some(args.subject.to_proto()),
        subject_name: args.name.unwrap_or_default(),
        legal_basis: args.basis,
        case_reference: args.case,
    }
}

async fn submit_and_watch(
    conn: &Conn,
    notice: &NoticeArgs,
    action: ActionName,
    out: render::Out,
) -> anyhow::Result<()> {
    // Read and check the notice before connecting, so that local mistakes show first.
    let request = build_request(notice, action)?;
    let mut client = connect(conn).await?;
    let response = client.submit_notice(request).await?.into_inner();
    let notice_id = print_notice(out, response.notice, response.replayed)?;
    if notice.watch {
        watch(&mut client, notice_id, notice.until_answered, out).await?;
    }
    Ok(())
}

async fn connect(conn: &Conn) -> anyhow::Result<PoliceServiceClient<Channel>> {
    Ok(client::police(conn.channel(ROLE, DEFAULT_ORG).await?))
}

fn build_request(args: &NoticeArgs, action: ActionName) -> anyhow::Result<SubmitNoticeRequest> {
    let file = match &args.file {
        Some(path) => read_notice_file(path)?,
        None => notice_from_flags(args)?,
    };
    let transfer_time = match &file.victim.transfer_time {
        Some(t) => time::parse(t)
            .map_err(anyhow::Error::msg)
            .context("victim.transfer_time")?,
        None => args
            .transfer_time
            .ok_or_else(|| anyhow::anyhow!("victim.transfer_time: is required"))?,
    };
    let request_id = args
        .request_id
        .clone()
        .or(file.request_id)
        .unwrap_or_else(default_request_id);
    let v = file.victim;
    let follows = args.follows.clone().unwrap_or_default();
    Ok(SubmitNoticeRequest {
        request_id,
        case_reference: file.case,
        action: action.to_proto() as i32,
        victim_transfer: Some(pb::VictimTransfer {
            institution_code: v.institution,
            account_number: v.account,
            account_name: v.name,
            currency: file.currency.unwrap_or_else(|| "CNY".to_owned()),
            amount_fen: v.amount_fen,
            transfer_time: Some(transfer_time),
            transaction_reference: v.transaction_ref,
        }),
        suspect_accounts: file
            .suspects
            .into_iter()
            .map(|s| suspect_to_proto(s, &follows))
            .collect(),
        case_filing: case_filing(args),
        freeze: freeze_terms(args, action),
        follow_funds: args.follow_funds.map(|max_depth| FollowFunds {
            enabled: true,
            max_depth,
        }),
    })
}

/// The case filing when either of its flags is given; the hub, not the CLI, decides what a
/// freeze without a (complete) filing gets.
fn case_filing(args: &NoticeArgs) -> Option<pb::CaseFiling> {
    (args.case_number.is_some() || args.filed_at.is_some()).then(|| pb::CaseFiling {
        case_number: args.case_number.clone().unwrap_or_default(),
        filed_at: args.filed_at,
    })
}

/// Freeze terms: always for a freeze (mode `amount` unless told otherwise); for a stop only
/// when freeze flags were given, so that the hub refuses them rather than the CLI dropping them.
fn freeze_terms(args: &NoticeArgs, action: ActionName) -> Option<pb::FreezeTerms> {
    let major = args
        .major_approval
        .as_ref()
        .map(|reference| pb::MajorCaseApproval {
            approval_reference: reference.clone(),
            approved_by: args.approved_by.clone().unwrap_or_default(),
        });
    let asked = args.freeze_mode.is_some() || major.is_some();
    (action == ActionName::Freeze || asked).then(|| pb::FreezeTerms {
        mode: args.freeze_mode.unwrap_or(FreezeModeArg::Amount).to_proto() as i32,
        major_case_approval: major,
    })
}

fn suspect_to_proto(s: SuspectSpec, follows: &str) -> pb::SuspectAccount {
    pb::SuspectAccount {
        institution_code: s.institution,
        account_number: s.account,
        account_name: s.name,
        account_kind: s.kind.to_proto() as i32,
        amount_fen: s.amount_fen,
        follows_instruction_id: follows.to_owned(),
    }
}

fn read_notice_file(path: &Path) -> anyhow::Result<NoticeFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid notice file", path.display()))
}

/// The flags as a notice file; clap has already required every field when `--file` is absent.
fn notice_from_flags(args: &NoticeArgs) -> anyhow::Result<NoticeFile> {
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

/// Prints the notice a submit, renewal or release answered with; returns its id.
fn print_notice(
    out: render::Out,
    notice: Option<Notice>,
    replayed: bool,
) -> anyhow::Result<String> {
    let notice = notice.context("the hub answered without a notice")?;
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

/// The short name of a watch event's kind.
fn watch_kind_name(v: i32) -> &'static str {
    match WatchEventKind::try_from(v) {
        Ok(WatchEventKind::State) => "state",
        Ok(WatchEventKind::RenewalReminder) => "renewal-reminder",
        Ok(WatchEventKind::Unspecified) | Err(_) => "unspecified",
    }
}

async fn watch(
    client: &mut PoliceServiceClient<Channel>,
    notice_id: String,
    until_answered: bool,
    out: render::Out,
) -> anyhow::Result<()> {
    let mut stream = client
        .watch_notice(WatchNoticeRequest {
            notice_id,
            until_answered,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        let Some(instruction) = event.instruction else {
            continue;
        };
        let kind = watch_kind_name(event.kind);
        let tag = match (kind, event.initial) {
            ("renewal-reminder", _) => "remind",
            (_, true) => "now   ",
            (_, false) => "change",
        };
        out.emit(
            || {
                let mut line = format!("{tag} {}", render::instruction_with_hops(&instruction, 7));
                if kind == "renewal-reminder" {
                    line.push_str("\n       renew it now if the freeze must continue: stophub police renew ");
                    line.push_str(&instruction.instruction_id);
                }
                line
            },
            || json!({ "event": "watch", "kind": kind, "initial": event.initial, "instruction": render::instruction_json(&instruction) }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::render::DocTypeName;
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

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: PoliceCommand,
    }

    const NOTICE: [&str; 16] = [
        "--case",
        "SZ-1",
        "--victim-institution",
        "CCB",
        "--victim-account",
        "6217000000000001",
        "--victim-name",
        "Zhang San",
        "--amount-fen",
        "500000",
        "--transaction-ref",
        "TX1",
        "--transfer-time",
        "2026-11-28T07:00:00Z",
        "--suspect",
        "ICBC:6222020200001237:Li Si:500000",
    ];

    /// The request `police <command> <notice flags> <extra>` would send.
    fn request(command: &str, extra: &[&str]) -> Result<SubmitNoticeRequest, String> {
        use clap::Parser;
        let argv = ["police", command]
            .into_iter()
            .chain(NOTICE)
            .chain(extra.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let (notice, action) = match cli.command {
            PoliceCommand::Submit(s) => (s.notice, s.action),
            PoliceCommand::Freeze(n) => (*n, ActionName::Freeze),
            other => panic!("unexpected {other:?}"),
        };
        build_request(&notice, action).map_err(|e| e.to_string())
    }

    #[test]
    fn stops_carry_no_freeze_particulars_unless_asked() {
        let r = request("submit", &["--request-id", "r1"]).unwrap();
        assert_eq!(r.action, pb::Action::StopPayment as i32);
        assert_eq!(
            (r.case_filing, r.freeze, r.follow_funds),
            (None, None, None)
        );
        assert_eq!(r.suspect_accounts[0].follows_instruction_id, "");
        // Freeze flags on a stop are sent, for the hub to refuse.
        let r = request("submit", &["--freeze-mode", "receive-only"]).unwrap();
        assert_eq!(
            r.freeze.map(|f| f.mode),
            Some(pb::FreezeMode::ReceiveOnly as i32)
        );
    }

    #[test]
    fn freezes_carry_the_filing_and_terms() {
        let filed = "2026-11-28T09:00:00+08:00";
        let r = request(
            "submit",
            &[
                "--action",
                "freeze",
                "--case-number",
                "LA-77",
                "--filed-at",
                filed,
                "--major-approval",
                "SZ-MAJOR-1",
                "--approved-by",
                "PSB-SZ",
                "--follows",
                "I000000000002",
            ],
        )
        .unwrap();
        assert_eq!(r.action, pb::Action::Freeze as i32);
        assert_eq!(
            r.case_filing,
            Some(pb::CaseFiling {
                case_number: "LA-77".into(),
                filed_at: Some(time::parse(filed).unwrap()),
            })
        );
        let freeze = r.freeze.unwrap();
        assert_eq!(freeze.mode, pb::FreezeMode::AmountLimited as i32);
        assert_eq!(
            freeze.major_case_approval,
            Some(pb::MajorCaseApproval {
                approval_reference: "SZ-MAJOR-1".into(),
                approved_by: "PSB-SZ".into(),
            })
        );
        assert_eq!(
            r.suspect_accounts[0].follows_instruction_id,
            "I000000000002"
        );
        // `freeze` is `submit --action freeze`; without a filing none is sent (the hub refuses).
        let r = request("freeze", &[]).unwrap();
        assert_eq!(r.action, pb::Action::Freeze as i32);
        assert_eq!(r.case_filing, None);
        assert!(r.freeze.is_some_and(|f| f.major_case_approval.is_none()));
        // Half a filing is sent as it is.
        let r = request("freeze", &["--case-number", "LA-77"]).unwrap();
        assert_eq!(
            r.case_filing,
            Some(pb::CaseFiling {
                case_number: "LA-77".into(),
                filed_at: None,
            })
        );
        // The approval comes as a pair; `freeze` takes no --action.
        assert!(request("freeze", &["--major-approval", "X"]).is_err());
        assert!(request("freeze", &["--action", "stop"]).is_err());
        assert!(request("submit", &["--action", "release"]).is_err());
    }

    #[test]
    fn follow_funds_takes_an_optional_depth() {
        let depth = |extra: &[&str]| request("submit", extra).unwrap().follow_funds;
        assert_eq!(depth(&[]), None);
        let enabled = |max_depth| {
            Some(FollowFunds {
                enabled: true,
                max_depth,
            })
        };
        assert_eq!(depth(&["--follow-funds"]), enabled(0));
        assert_eq!(depth(&["--follow-funds=2"]), enabled(2));
        // The depth must be attached, so that a following positional is not taken for it.
        assert_eq!(depth(&["--follow-funds", "--watch"]), enabled(0));
        assert!(request("submit", &["--follow-funds=x"]).is_err());
        assert!(request("submit", &["--until-answered"]).is_err());
        assert!(request("submit", &["--watch", "--until-answered"]).is_ok());
    }

    #[test]
    fn follow_up_commands_parse() {
        use clap::Parser;
        let cli =
            Cli::try_parse_from(["police", "release", "I7", "--reason", "unrelated"]).unwrap();
        assert!(
            matches!(cli.command, PoliceCommand::Release(r) if r.reason == "unrelated" && r.request_id.is_none())
        );
        assert!(Cli::try_parse_from(["police", "release", "I7"]).is_err());
        let cli = Cli::try_parse_from(["police", "renew", "I7", "--until", "2027-11-28T00:00:00Z"])
            .unwrap();
        assert!(matches!(cli.command, PoliceCommand::Renew(r) if r.until.is_some()));
        assert!(Cli::try_parse_from(["police", "renew", "I7", "--until", "next year"]).is_err());
        let cli = Cli::try_parse_from(["police", "watch", "N1", "--until-answered"]).unwrap();
        assert!(matches!(
            cli.command,
            PoliceCommand::Watch {
                until_answered: true,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["police", "graph", "SZ-1"]).is_ok());
    }

    #[test]
    fn list_subject_and_delist_parse() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "police",
            "list-subject",
            "--doc-type",
            "Resident-ID",
            "--doc-number",
            "11010519491231002x",
            "--basis",
            "B1",
            "--case",
            "SZ-1",
            "--request-id",
            "r1",
        ])
        .unwrap();
        let PoliceCommand::ListSubject(list) = cli.command else {
            panic!("list-subject expected")
        };
        assert_eq!(
            list_subject_request(list),
            ListSubjectRequest {
                request_id: "r1".into(),
                subject: Some(pb::SubjectRef {
                    document_type: pb::DocumentType::ResidentId as i32,
                    // The hub, not the CLI, normalises the number.
                    document_number: "11010519491231002x".into(),
                }),
                subject_name: String::new(),
                legal_basis: "B1".into(),
                case_reference: "SZ-1".into(),
            }
        );
        let subject = ["--doc-type", "uscc", "--doc-number", "91350100M000100Y43"];
        let with = |extra: &[&str]| {
            let argv = ["police", "list-subject"]
                .into_iter()
                .chain(subject)
                .chain(extra.iter().copied());
            Cli::try_parse_from(argv)
        };
        assert!(with(&["--basis", "B1", "--case", "C", "--name", "Acme Ltd"]).is_ok());
        assert!(with(&["--basis", "B1"]).is_err());
        assert!(with(&["--case", "C"]).is_err());
        assert!(
            Cli::try_parse_from([
                "police",
                "list-subject",
                "--doc-type",
                "driving-licence",
                "--doc-number",
                "1",
                "--basis",
                "B",
                "--case",
                "C"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from(
            ["police", "delist"]
                .into_iter()
                .chain(subject)
                .chain(["--reason", "listed in error"]),
        )
        .unwrap();
        assert!(
            matches!(cli.command, PoliceCommand::Delist(d) if d.reason == "listed in error" && d.subject.doc_type == DocTypeName::Uscc)
        );
        assert!(Cli::try_parse_from(["police", "delist"].into_iter().chain(subject)).is_err());
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
