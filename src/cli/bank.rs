//! `stophub bank listen | ack | check | sync`: an institution's side of the hub, a simulated
//! bank (`listen --auto-ack`, see [`super::sim`]) that answers from an in-memory ledger, for
//! demos and tests, and blacklist screening at the hub or against a local mirror kept by
//! `sync` (see [`super::mirror`]).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::mirror::{self, Mirror};
use super::render::DocTypeName;
use super::sim::{self, EarlierRule, OnwardRule, Simulator};
use super::sync::{self, SyncArgs};
use super::{Conn, EXIT_CODES, UsageError, render, time};
use crate::client;
use crate::proto::stophub::bank::v1::acknowledge_request::Outcome;
use crate::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use crate::proto::stophub::bank::v1::{
    AcknowledgeRequest, AcknowledgeResponse, CheckSubjectRequest, DeliveryKind, SubscribeRequest,
    SubscribeResponse,
};
use crate::proto::stophub::common::v1 as pb;

const ROLE: &str = "bank";
const DEFAULT_ORG: &str = "ICBC";
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct BankArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    command: BankCommand,
}

#[derive(Debug, Subcommand)]
enum BankCommand {
    /// Receive this institution's instructions as they arrive; optionally answer them from a
    /// simulated ledger (--auto-ack).
    #[command(after_help = EXIT_CODES, after_long_help = LISTEN_LONG_HELP)]
    Listen(ListenArgs),
    /// Answer one instruction with exactly one outcome.
    #[command(after_help = EXIT_CODES, after_long_help = ACK_LONG_HELP)]
    Ack(Box<AckArgs>),
    /// Screen subjects against the account blacklist (at account opening, before non-counter
    /// business), at the hub or in a local mirror (--mirror).
    #[command(after_help = EXIT_CODES, after_long_help = CHECK_LONG_HELP)]
    Check(CheckArgs),
    /// Keep a local mirror of the account blacklist in a file, for `check --mirror`.
    #[command(after_help = EXIT_CODES, after_long_help = sync::SYNC_LONG_HELP)]
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The identity document: resident-id (居民身份证), passport, or uscc (统一社会信用代码,
    /// which names a unit); the same for every --doc-number.
    #[arg(long, value_enum, value_name = "TYPE", ignore_case = true)]
    doc_type: DocTypeName,
    /// A document number as printed; repeat or separate with commas for several (the hub
    /// takes 1-100 per call).
    #[arg(
        long,
        value_name = "NUMBER",
        value_delimiter = ',',
        required = true,
        num_args = 1..
    )]
    doc_number: Vec<String>,
    /// Answer from this mirror file (kept by `stophub bank sync`) instead of the hub: no
    /// connection is made.
    #[arg(long, value_name = "FILE")]
    mirror: Option<PathBuf>,
}

impl CheckArgs {
    fn subjects(&self) -> Vec<pb::SubjectRef> {
        self.doc_number
            .iter()
            .map(|n| pb::SubjectRef {
                document_type: self.doc_type.to_proto() as i32,
                document_number: n.clone(),
            })
            .collect()
    }
}

const CHECK_LONG_HELP: &str = concat!(
    "One line per subject, in the order given:
  resident-id 11010519491231002X  listed until 2031-11-28T08:40:00Z  effects: non-counter suspended, payment accounts suspended, no new accounts
  passport E12345678  not listed
The answer never names the case or the agency. With --mirror the answer comes from the file
alone, followed by `(from mirror version V, synced at T)`; an entry whose term has ended counts
as not listed even before the mirror learns of the lapse, and a malformed number (length,
alphabet, check character) is refused as the hub refuses it, but as a usage error (exit 2).

The exit code is 0 whether or not a subject is listed (a listed subject is an answer, not an
error): scripts read the output, best with --json, one object per subject:
  {\"event\": \"check\", \"source\": \"hub\", \"listed\": true,
   \"subject\": {\"document_type\": \"resident-id\", \"document_number\": \"11010519491231002X\"},
   \"effects\": {\"bank_non_counter_suspended\": true, \"payment_accounts_suspended\": true,
               \"no_new_accounts\": true},
   \"listed_until\": \"2031-11-28T08:40:00Z\"}
(`effects` and `listed_until` are null when not listed; with --mirror, `source` is \"mirror\" and
`mirror_version` and `synced_at` are added), e.g.
  stophub bank check --json --doc-type resident-id --doc-number 11010519491231002X | jq -e '.listed | not'

Checks at the hub are rate-limited per institution (RESOURCE_EXHAUSTED, exit 3) and recorded.

",
    super::exit_codes!()
);

const LISTEN_LONG_HELP: &str = concat!(
    "Every delivery is printed: `instr` for an instruction to act on, `overdue` for a reminder
that an answer is overdue (answered like an instruction if it still is unanswered), `lapsed`
for a stop or freeze whose term ended (lift it; nothing to answer).

The simulated ledger of --auto-ack gives each account, the first time it is seen, a balance
of twice the amount requested; an account number ending in 7 has half the amount requested
(a stop is answered PARTIAL); one ending in 0 does not exist (ACCOUNT_NOT_FOUND).
--balance-fen gives every account that balance instead.
- stop-payment: holds what is available: EXECUTED, PARTIAL, or REJECTED when nothing is.
- freeze: FROZEN: min(requested, available) frozen, the rest not frozen for \"insufficient
  balance\"; a freeze that follows a stop takes over that stop's hold. With --earlier-freeze
  every freeze reports an earlier freeze by another authority (the hub queues it).
- renewal, release: DONE; a release (or a lapse) gives the hold back.
With --onward, a stop or freeze that holds less than requested reports onward transfers of
PERCENT% of the shortfall to each account given, a minute after the victim's transfer, for
instructions down to --onward-depth, so that the hub can follow the money. A redelivered
instruction is answered again with the identical answer.

Example, a two-level chase (the hub follows ICBC's partial stop to CCB):
  stophub bank listen --org ICBC --auto-ack --onward 'CCB:6217000000009999:Next Holder:100' &
  stophub bank listen --org CCB --auto-ack &

",
    super::exit_codes!()
);

const ACK_LONG_HELP: &str = concat!(
    "Outcomes by action: a stop-payment is answered --executed or --partial; a freeze --frozen;
a renewal or release --done; any of them --mismatch (stops and freezes), --not-found or
--rejected.

Examples:
  stophub bank ack I000000000002 --partial --held-fen 150000 --balance-fen 0 \\
    --onward 'CCB:6217000000009999:Next Holder:350000:2026-11-28T07:01:00Z'
  stophub bank ack I000000000005 --frozen --frozen-fen 150000 --balance-fen 150000 --available-fen 0 \\
    --not-frozen-fen 350000 --not-frozen-reason 'insufficient balance' \\
    --earlier-freeze 'Futian Court:100000:2027-02-26T00:00:00Z'
  stophub bank ack I000000000007 --done

",
    super::exit_codes!()
);

#[derive(Debug, Args)]
struct ListenArgs {
    /// The last sequence number already processed; 0 to start from the beginning.
    #[arg(long, value_name = "N", default_value_t = 0)]
    after_sequence: u64,
    /// Act as a simulated bank: answer every instruction from an in-memory ledger.
    #[arg(long)]
    auto_ack: bool,
    /// With --auto-ack: every account's starting balance, in fen.
    #[arg(long, value_name = "FEN", requires = "auto_ack")]
    balance_fen: Option<i64>,
    /// With --auto-ack: where the money not held went: an onward transfer of PERCENT% of it
    /// to this account, reported with each stop or freeze that holds less than requested.
    /// Repeat for several.
    #[arg(
        long = "onward",
        value_name = "INST:ACCOUNT:NAME:PERCENT",
        value_parser = sim::parse_onward_rule,
        requires = "auto_ack"
    )]
    onward: Vec<OnwardRule>,
    /// With --onward: report onward transfers only for instructions at this level or above
    /// (1 = the accounts police named; next-level stops are 2, 3, ...), so that a chase ends.
    #[arg(long, value_name = "N", default_value_t = 1)]
    onward_depth: u32,
    /// With --auto-ack: report with every freeze an earlier freeze of AMOUNT_FEN by
    /// AUTHORITY, expiring in 90 days (the hub then puts the freeze QUEUED).
    #[arg(
        long,
        value_name = "AUTHORITY:AMOUNT_FEN",
        value_parser = sim::parse_earlier_rule,
        requires = "auto_ack"
    )]
    earlier_freeze: Option<EarlierRule>,
    /// Exit when the stream ends or fails instead of reconnecting.
    #[arg(long)]
    once: bool,
    /// Exit 0 after processing this many deliveries.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    exit_after: Option<u64>,
}

/// Outcomes other than these take no amounts, times or transfers.
const NO_AMOUNTS: [&str; 3] = ["mismatch", "not_found", "rejected"];
/// Every outcome but --frozen: the freeze-only flags conflict with them.
const NOT_FROZEN: [&str; 6] = [
    "executed",
    "partial",
    "done",
    "mismatch",
    "not_found",
    "rejected",
];

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("outcome")
        .required(true)
        .args(["executed", "partial", "frozen", "done", "mismatch", "not_found", "rejected"])
))]
struct AckArgs {
    /// The instruction id (`I...`).
    instruction_id: String,
    /// Stop-payment: the whole amount requested is held (needs --held-fen and --balance-fen).
    #[arg(long)]
    executed: bool,
    /// Stop-payment: less than requested is held (needs --held-fen and --balance-fen).
    #[arg(long)]
    partial: bool,
    /// Freeze: what was frozen (needs --frozen-fen, --balance-fen and --available-fen).
    #[arg(long)]
    frozen: bool,
    /// Renewal or release: carried out.
    #[arg(long)]
    done: bool,
    /// Particulars that did not match: name, number, amount, time (comma separated).
    #[arg(long, value_name = "FIELD[,FIELD]", value_delimiter = ',', num_args = 1..)]
    mismatch: Option<Vec<MismatchArg>>,
    /// The institution holds no such account.
    #[arg(long)]
    not_found: bool,
    /// The institution refuses to act, for this reason.
    #[arg(long, value_name = "REASON")]
    rejected: Option<String>,
    /// With --executed or --partial: the amount held, in fen.
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        required_if_eq_any = [("executed", "true"), ("partial", "true")],
        conflicts_with_all = ["frozen", "done", "mismatch", "not_found", "rejected"]
    )]
    held_fen: Option<i64>,
    /// With --executed or --partial: the account balance after the hold, in fen; with
    /// --frozen: the account balance.
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        required_if_eq_any = [("executed", "true"), ("partial", "true"), ("frozen", "true")],
        conflicts_with_all = ["done", "mismatch", "not_found", "rejected"]
    )]
    balance_fen: Option<i64>,
    /// With --frozen: the amount frozen, in fen.
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        required_if_eq("frozen", "true"),
        conflicts_with_all = NOT_FROZEN
    )]
    frozen_fen: Option<i64>,
    /// With --frozen: the balance still available to the holder, in fen.
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        required_if_eq("frozen", "true"),
        conflicts_with_all = NOT_FROZEN
    )]
    available_fen: Option<i64>,
    /// With --frozen: the amount requested but not frozen, in fen [default: 0]; with
    /// --not-frozen-reason when > 0.
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        conflicts_with_all = NOT_FROZEN
    )]
    not_frozen_fen: Option<i64>,
    /// With --frozen: why some of the amount was not frozen.
    #[arg(long, value_name = "TEXT", conflicts_with_all = NOT_FROZEN)]
    not_frozen_reason: Option<String>,
    /// With --frozen: an earlier freeze on the account by another authority (the hub then
    /// queues this freeze behind it). Repeat for several.
    #[arg(
        long,
        value_name = "AUTHORITY:AMOUNT_FEN:EXPIRES_RFC3339",
        value_parser = parse_earlier_freeze,
        conflicts_with_all = NOT_FROZEN
    )]
    earlier_freeze: Vec<pb::EarlierFreeze>,
    /// With --executed, --partial or --frozen: a transfer out of the account after the
    /// victim's transfer, so that the hub can follow the money. Repeat for several. The
    /// transaction reference defaults to `ACK-<instruction id>-<n>`.
    #[arg(
        long,
        value_name = "INST:ACCOUNT:NAME:AMOUNT_FEN:TIME_RFC3339[:ref=REF]",
        value_parser = parse_onward_transfer,
        conflicts_with_all = ["done", "mismatch", "not_found", "rejected"]
    )]
    onward: Vec<pb::OnwardTransfer>,
    /// With --executed, --partial, --frozen or --done: when it was carried out, RFC 3339
    /// [default: now]. To repeat an answer (a no-op), pass the same instant again.
    #[arg(
        long,
        value_name = "RFC3339",
        value_parser = time::parse,
        conflicts_with_all = NO_AMOUNTS
    )]
    executed_at: Option<prost_types::Timestamp>,
    /// With --mismatch or --not-found: optional free text.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["executed", "partial", "frozen", "done", "rejected"])]
    detail: Option<String>,
}

/// Splits `HEAD:RFC3339` at the colon where an RFC 3339 instant (which itself contains
/// colons) starts.
fn split_time_suffix(s: &str) -> Option<(&str, prost_types::Timestamp)> {
    s.char_indices()
        .rev()
        .filter(|(_, c)| *c == ':')
        .find_map(|(p, _)| time::parse(&s[p + 1..]).ok().map(|t| (&s[..p], t)))
}

/// Parses `AUTHORITY:AMOUNT_FEN:EXPIRES_RFC3339`; the authority may contain ':'.
fn parse_earlier_freeze(s: &str) -> Result<pb::EarlierFreeze, String> {
    let usage = "expected AUTHORITY:AMOUNT_FEN:EXPIRES_RFC3339, e.g. 'Futian Court:100000:2027-02-26T00:00:00Z'";
    let (head, expires_at) = split_time_suffix(s)
        .ok_or_else(|| format!("{s:?}: no RFC 3339 expiry at the end; {usage}"))?;
    let (authority, amount) = head
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: {usage}"))?;
    let amount_fen = amount.trim().parse::<i64>().map_err(|_| {
        format!("{s:?}: AMOUNT_FEN {amount:?} is not a whole number of fen; {usage}")
    })?;
    if authority.trim().is_empty() {
        return Err(format!("{s:?}: AUTHORITY must not be empty; {usage}"));
    }
    Ok(pb::EarlierFreeze {
        amount_fen,
        expires_at: Some(expires_at),
        authority: authority.trim().to_owned(),
    })
}

/// Parses `INST:ACCOUNT:NAME:AMOUNT_FEN:TIME_RFC3339[:ref=REF]`; the name may contain ':'.
/// An empty transaction reference is filled in by [`outcome`].
fn parse_onward_transfer(s: &str) -> Result<pb::OnwardTransfer, String> {
    let usage = "expected INST:ACCOUNT:NAME:AMOUNT_FEN:TIME_RFC3339[:ref=REF], e.g. 'CCB:6217000000009999:Next Holder:350000:2026-11-28T07:01:00Z'";
    let (rest, reference) = match s.rsplit_once(":ref=") {
        Some((rest, r)) if !r.trim().is_empty() => (rest, r.trim().to_owned()),
        Some(_) => {
            return Err(format!(
                "{s:?}: REF after ':ref=' must not be empty; {usage}"
            ));
        }
        None => (s, String::new()),
    };
    let (head, time) = split_time_suffix(rest)
        .ok_or_else(|| format!("{s:?}: no RFC 3339 time after the amount; {usage}"))?;
    let parts: Vec<&str> = head.split(':').collect();
    if parts.len() < 4 {
        return Err(format!("{s:?}: {usage}"));
    }
    let amount = parts[parts.len() - 1];
    let amount_fen = amount.trim().parse::<i64>().map_err(|_| {
        format!("{s:?}: AMOUNT_FEN {amount:?} is not a whole number of fen; {usage}")
    })?;
    let t = pb::OnwardTransfer {
        institution_code: parts[0].trim().to_owned(),
        account_number: parts[1].trim().to_owned(),
        account_name: parts[2..parts.len() - 1].join(":").trim().to_owned(),
        amount_fen,
        time: Some(time),
        transaction_reference: reference,
    };
    if t.institution_code.is_empty() || t.account_number.is_empty() || t.account_name.is_empty() {
        return Err(format!(
            "{s:?}: INST, ACCOUNT and NAME must not be empty; {usage}"
        ));
    }
    Ok(t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MismatchArg {
    Name,
    Number,
    Amount,
    Time,
}

impl MismatchArg {
    fn to_proto(self) -> pb::MismatchField {
        match self {
            MismatchArg::Name => pb::MismatchField::AccountName,
            MismatchArg::Number => pb::MismatchField::AccountNumber,
            MismatchArg::Amount => pb::MismatchField::Amount,
            MismatchArg::Time => pb::MismatchField::TransferTime,
        }
    }
}

pub async fn run(args: BankArgs) -> anyhow::Result<()> {
    let out = args.conn.out();
    let command = match args.command {
        // The mirror answers alone: no connection.
        BankCommand::Check(check) if check.mirror.is_some() => return check_mirror(&check, out),
        command => command,
    };
    let mut client = client::bank(args.conn.channel(ROLE, DEFAULT_ORG).await?);
    match command {
        BankCommand::Check(check) => {
            let request = CheckSubjectRequest {
                subjects: check.subjects(),
            };
            let response = client.check_subject(request).await?.into_inner();
            for r in &response.results {
                out.emit(
                    || render::check_line(r),
                    || with_source(render::check_json(r), json!({ "source": "hub" })),
                )?;
            }
            Ok(())
        }
        BankCommand::Sync(sync) => sync::run(&mut client, &sync, out).await,
        BankCommand::Listen(listen) => Listener::new(&listen, out).run(&mut client, &listen).await,
        BankCommand::Ack(ack) => {
            let request = AcknowledgeRequest {
                instruction_id: ack.instruction_id.clone(),
                outcome: Some(outcome(&ack, time::now())),
            };
            let response = client.acknowledge(request).await?.into_inner();
            print_ack(out, &response)
        }
    }
}

/// `bank check --mirror FILE`: the same answers as the hub's, from the file alone.
fn check_mirror(args: &CheckArgs, out: render::Out) -> anyhow::Result<()> {
    let path = args.mirror.as_deref().context("--mirror is required")?;
    let mirror = Mirror::load(path)?.with_context(|| {
        format!(
            "no mirror at {0}; make one with `stophub bank sync --out {0} --exit-after-snapshot`",
            path.display()
        )
    })?;
    // Refuse what the hub would refuse, rather than answer `not listed` for a typo.
    for number in &args.doc_number {
        mirror::validate(args.doc_type, number)
            .map_err(|why| UsageError(format!("--doc-number {number:?}: {why}")))?;
    }
    let (version, synced_at) = (mirror.version, time::format_opt(mirror.synced_at.as_ref()));
    let now = time::now();
    for subject in args.subjects() {
        let r = mirror.check(&subject, &now);
        out.emit(
            || render::check_line(&r),
            || {
                let source = json!({ "source": "mirror", "mirror_version": version, "synced_at": synced_at });
                with_source(render::check_json(&r), source)
            },
        )?;
    }
    if !out.json {
        out.emit(
            || format!("(from mirror version {version}, synced at {synced_at})"),
            || json!({}),
        )?;
    }
    Ok(())
}

/// A check answer as a `check` event, with where it came from.
fn with_source(answer: serde_json::Value, source: serde_json::Value) -> serde_json::Value {
    let mut v = json!({ "event": "check" });
    for part in [source, answer] {
        if let (Some(v), serde_json::Value::Object(part)) = (v.as_object_mut(), part) {
            v.extend(part);
        }
    }
    v
}

/// The outcome `bank ack` sends; clap has already enforced exactly one outcome and the
/// amounts it needs.
fn outcome(args: &AckArgs, now: prost_types::Timestamp) -> Outcome {
    let held = args.held_fen.unwrap_or_default();
    let balance = args.balance_fen.unwrap_or_default();
    let executed_at = Some(args.executed_at.unwrap_or(now));
    let detail = args.detail.clone().unwrap_or_default();
    let onward_transfers: Vec<pb::OnwardTransfer> = args
        .onward
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let mut t = t.clone();
            if t.transaction_reference.is_empty() {
                t.transaction_reference = format!("ACK-{}-{}", args.instruction_id, n + 1);
            }
            t
        })
        .collect();
    if args.executed {
        Outcome::Executed(pb::Executed {
            amount_held_fen: held,
            balance_fen: balance,
            executed_at,
            onward_transfers,
        })
    } else if args.partial {
        Outcome::Partial(pb::Partial {
            amount_held_fen: held,
            balance_fen: balance,
            executed_at,
            onward_transfers,
        })
    } else if args.frozen {
        Outcome::Frozen(pb::Frozen {
            amount_frozen_fen: args.frozen_fen.unwrap_or_default(),
            balance_fen: balance,
            available_balance_fen: args.available_fen.unwrap_or_default(),
            amount_not_frozen_fen: args.not_frozen_fen.unwrap_or_default(),
            not_frozen_reason: args.not_frozen_reason.clone().unwrap_or_default(),
            earlier_freezes: args.earlier_freeze.clone(),
            executed_at,
            onward_transfers,
        })
    } else if args.done {
        Outcome::Done(pb::Done { executed_at })
    } else if let Some(fields) = &args.mismatch {
        let fields = fields.iter().map(|f| f.to_proto() as i32).collect();
        Outcome::Mismatch(pb::Mismatch { fields, detail })
    } else if let Some(reason) = &args.rejected {
        Outcome::Rejected(pb::Rejected {
            reason: reason.clone(),
        })
    } else {
        Outcome::AccountNotFound(pb::AccountNotFound { detail })
    }
}

fn print_ack(out: render::Out, response: &AcknowledgeResponse) -> anyhow::Result<()> {
    let Some(instruction) = &response.instruction else {
        anyhow::bail!("the hub answered without the instruction");
    };
    let duplicate = response.duplicate;
    out.emit(
        || {
            let note = if duplicate { "  (duplicate: already recorded)" } else { "" };
            format!("ack   {}{note}", render::instruction_with_hops(instruction, 6))
        },
        || json!({ "event": "ack", "duplicate": duplicate, "instruction": render::instruction_json(instruction) }),
    )
}

/// The short name of a delivery's kind: `instr`, `overdue` or `lapsed`.
fn delivery_kind_name(v: i32) -> &'static str {
    match DeliveryKind::try_from(v) {
        Ok(DeliveryKind::Instruction) => "instr",
        Ok(DeliveryKind::OverdueReminder) => "overdue",
        Ok(DeliveryKind::Lapsed) => "lapsed",
        Ok(DeliveryKind::Unspecified) | Err(_) => "unspecified",
    }
}

fn print_delivery(
    out: render::Out,
    d: &SubscribeResponse,
    i: &pb::Instruction,
) -> anyhow::Result<()> {
    let kind = delivery_kind_name(d.kind);
    out.emit(
        || {
            let (name, case) = (
                i.account.as_ref().map_or("", |a| a.account_name.as_str()),
                &i.case_reference,
            );
            let again = if d.redelivery { "  (redelivery)" } else { "" };
            let urgent = if d.urgent { "  (urgent)" } else { "" };
            format!(
                "#{:<5} {kind:<7} {}  {name}  case {case}{again}{urgent}",
                d.sequence,
                render::instruction_line(i)
            )
        },
        || {
            json!({
                "event": "delivery",
                "kind": kind,
                "sequence": d.sequence,
                "redelivery": d.redelivery,
                "urgent": d.urgent,
                "instruction": render::instruction_json(i),
            })
        },
    )
}

/// Why a subscription session stopped without an error.
enum Stop {
    /// `--exit-after` reached.
    Done,
    /// The hub closed the stream.
    Ended,
}

/// State that survives reconnections: where to resume, what was answered.
struct Listener {
    out: render::Out,
    auto_ack: bool,
    exit_after: Option<u64>,
    sim: Simulator,
    /// Every answer sent, by instruction id, so that a redelivery gets the identical answer.
    answers: HashMap<String, Outcome>,
    /// Instructions whose answer the hub confirmed: a later delivery of them (an overdue
    /// reminder read before the answer was recorded) needs no answer.
    acked: HashSet<String>,
    last_sequence: u64,
    processed: u64,
}

impl Listener {
    fn new(args: &ListenArgs, out: render::Out) -> Self {
        Self {
            out,
            auto_ack: args.auto_ack,
            exit_after: args.exit_after,
            sim: Simulator::new(
                args.balance_fen,
                args.onward.clone(),
                args.onward_depth,
                args.earlier_freeze.clone(),
            ),
            answers: HashMap::new(),
            acked: HashSet::new(),
            last_sequence: args.after_sequence,
            processed: 0,
        }
    }

    /// Subscribes, and re-subscribes after a transient failure from the last processed
    /// sequence, until `--exit-after` is reached (or the first stop, with `--once`).
    async fn run(
        &mut self,
        client: &mut BankServiceClient<Channel>,
        args: &ListenArgs,
    ) -> anyhow::Result<()> {
        loop {
            match self.session(client).await {
                Ok(Stop::Done) => return Ok(()),
                Ok(Stop::Ended) if args.once => return Ok(()),
                Ok(Stop::Ended) => eprintln!("stophub: the hub closed the stream; reconnecting"),
                Err(e) if args.once || !transient(&e) => return Err(e),
                Err(e) => {
                    let why = e
                        .downcast_ref::<Status>()
                        .map_or_else(|| format!("{e:#}"), super::status_line);
                    eprintln!(
                        "stophub: {why}; reconnecting in {}s",
                        RECONNECT_DELAY.as_secs()
                    );
                }
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }

    async fn session(&mut self, client: &mut BankServiceClient<Channel>) -> anyhow::Result<Stop> {
        let request = SubscribeRequest {
            after_sequence: self.last_sequence,
        };
        let mut stream = client.subscribe(request).await?.into_inner();
        while let Some(delivery) = stream.message().await? {
            self.handle(client, &delivery).await?;
            if self.exit_after.is_some_and(|n| self.processed >= n) {
                return Ok(Stop::Done);
            }
        }
        Ok(Stop::Ended)
    }

    async fn handle(
        &mut self,
        client: &mut BankServiceClient<Channel>,
        d: &SubscribeResponse,
    ) -> anyhow::Result<()> {
        let instruction = d
            .instruction
            .as_ref()
            .context("the hub sent a delivery without an instruction")?;
        print_delivery(self.out, d, instruction)?;
        if self.auto_ack {
            match DeliveryKind::try_from(d.kind) {
                // The term ended: lift the hold; there is nothing to answer.
                Ok(DeliveryKind::Lapsed) => {
                    if let Some(a) = &instruction.account {
                        self.sim
                            .lift(&a.account_number, &instruction.instruction_id);
                    }
                }
                // An instruction, or a reminder that its answer is overdue: answer it if the
                // hub has no answer yet.
                Ok(
                    DeliveryKind::Instruction
                    | DeliveryKind::OverdueReminder
                    | DeliveryKind::Unspecified,
                )
                | Err(_) => {
                    let id = &instruction.instruction_id;
                    if instruction.acknowledgement.is_none() && !self.acked.contains(id) {
                        let request = AcknowledgeRequest {
                            instruction_id: id.clone(),
                            outcome: Some(self.answer_for(instruction)),
                        };
                        let response = client.acknowledge(request).await?.into_inner();
                        self.acked.insert(id.clone());
                        print_ack(self.out, &response)?;
                    }
                }
            }
        }
        self.last_sequence = self.last_sequence.max(d.sequence);
        self.processed += 1;
        Ok(())
    }

    /// The answer already sent for this instruction, or a new one from the simulated ledger.
    fn answer_for(&mut self, i: &pb::Instruction) -> Outcome {
        if let Some(answer) = self.answers.get(&i.instruction_id) {
            return answer.clone();
        }
        let answer = self.sim.answer(i, time::now());
        self.answers
            .insert(i.instruction_id.clone(), answer.clone());
        answer
    }
}

/// Failures worth a reconnection: the connection or the hub went away. A refusal (bad
/// certificate, bad answer) is not retried.
pub(super) fn transient(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Status>().is_some_and(|s| {
        matches!(
            s.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Cancelled
                | Code::Aborted
                | Code::DeadlineExceeded
                | Code::Internal
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::stophub::bank::v1::CheckResult;
    use clap::Parser;

    fn at() -> prost_types::Timestamp {
        time::from_millis(1_000)
    }

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        ack: AckArgs,
    }

    fn parse_ack(args: &[&str]) -> Result<Outcome, clap::Error> {
        let w = Wrapper::try_parse_from(["ack", "I1"].iter().chain(args))?;
        Ok(outcome(&w.ack, at()))
    }

    fn rfc(s: &str) -> prost_types::Timestamp {
        time::parse(s).unwrap()
    }

    #[test]
    fn ack_requires_exactly_one_outcome() {
        let executed = pb::Executed {
            amount_held_fen: 5,
            balance_fen: 6,
            executed_at: Some(at()),
            ..Default::default()
        };
        assert_eq!(
            parse_ack(&["--executed", "--held-fen", "5", "--balance-fen", "6"]).unwrap(),
            Outcome::Executed(executed)
        );
        let mismatch = pb::Mismatch {
            fields: vec![1, 3],
            detail: "x".into(),
        };
        assert_eq!(
            parse_ack(&["--mismatch", "name,amount", "--detail", "x"]).unwrap(),
            Outcome::Mismatch(mismatch)
        );
        assert!(matches!(
            parse_ack(&["--not-found"]).unwrap(),
            Outcome::AccountNotFound(_)
        ));
        assert!(
            matches!(parse_ack(&["--rejected", "court order"]).unwrap(), Outcome::Rejected(r) if r.reason == "court order")
        );
        assert_eq!(
            parse_ack(&["--done"]).unwrap(),
            Outcome::Done(pb::Done {
                executed_at: Some(at())
            })
        );
        assert_eq!(
            parse_ack(&["--done", "--executed-at", "2026-11-28T07:00:00Z"]).unwrap(),
            Outcome::Done(pb::Done {
                executed_at: Some(rfc("2026-11-28T07:00:00Z"))
            })
        );
        for bad in [
            &[][..],
            &["--executed"],
            &["--executed", "--not-found"],
            &["--not-found", "--held-fen", "5"],
            &["--mismatch", "colour"],
            &["--rejected", "x", "--detail", "y"],
            &["--done", "--held-fen", "5"],
            &["--done", "--balance-fen", "5"],
            &["--done", "--frozen"],
            &["--done", "--onward", "CCB:6217:N:5:2026-11-28T07:00:00Z"],
            &["--frozen", "--frozen-fen", "5", "--balance-fen", "5"],
            &["--frozen", "--frozen-fen", "5", "--available-fen", "0"],
            &[
                "--frozen",
                "--balance-fen",
                "5",
                "--available-fen",
                "0",
                "--held-fen",
                "5",
            ],
            &[
                "--executed",
                "--held-fen",
                "5",
                "--balance-fen",
                "6",
                "--frozen-fen",
                "5",
            ],
            &[
                "--partial",
                "--held-fen",
                "5",
                "--balance-fen",
                "6",
                "--not-frozen-fen",
                "5",
            ],
            &["--done", "--earlier-freeze", "Court:5:2027-01-01T00:00:00Z"],
            &["--rejected", "x", "--executed-at", "2026-11-28T07:00:00Z"],
        ] {
            assert!(parse_ack(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ack_frozen_with_everything() {
        let got = parse_ack(&[
            "--frozen",
            "--frozen-fen",
            "150000",
            "--balance-fen",
            "150000",
            "--available-fen",
            "0",
            "--not-frozen-fen",
            "350000",
            "--not-frozen-reason",
            "insufficient balance",
            "--earlier-freeze",
            "Futian Court:100000:2027-02-26T00:00:00Z",
            "--earlier-freeze",
            "PSB: Nanshan:5:2027-03-01T08:00:00+08:00",
            "--onward",
            "CCB:6217000000009999:Next Holder:350000:2026-11-28T07:01:00Z",
            "--onward",
            "ABC:6228000000001111:Zhao: Liu:1:2026-11-28T15:02:00+08:00:ref=TX-9",
        ])
        .unwrap();
        let Outcome::Frozen(f) = got else {
            panic!("frozen expected: {got:?}")
        };
        assert_eq!(
            (
                f.amount_frozen_fen,
                f.balance_fen,
                f.available_balance_fen,
                f.amount_not_frozen_fen,
                f.not_frozen_reason.as_str()
            ),
            (150_000, 150_000, 0, 350_000, "insufficient balance")
        );
        assert_eq!(f.executed_at, Some(at()));
        assert_eq!(
            f.earlier_freezes,
            vec![
                pb::EarlierFreeze {
                    amount_fen: 100_000,
                    expires_at: Some(rfc("2027-02-26T00:00:00Z")),
                    authority: "Futian Court".into(),
                },
                pb::EarlierFreeze {
                    amount_fen: 5,
                    expires_at: Some(rfc("2027-03-01T00:00:00Z")),
                    authority: "PSB: Nanshan".into(),
                },
            ]
        );
        assert_eq!(
            f.onward_transfers,
            vec![
                pb::OnwardTransfer {
                    institution_code: "CCB".into(),
                    account_number: "6217000000009999".into(),
                    account_name: "Next Holder".into(),
                    amount_fen: 350_000,
                    time: Some(rfc("2026-11-28T07:01:00Z")),
                    transaction_reference: "ACK-I1-1".into(),
                },
                pb::OnwardTransfer {
                    institution_code: "ABC".into(),
                    account_number: "6228000000001111".into(),
                    account_name: "Zhao: Liu".into(),
                    amount_fen: 1,
                    time: Some(rfc("2026-11-28T07:02:00Z")),
                    transaction_reference: "TX-9".into(),
                },
            ]
        );
        // The minimal frozen answer.
        let got = parse_ack(&[
            "--frozen",
            "--frozen-fen",
            "5",
            "--balance-fen",
            "9",
            "--available-fen",
            "4",
        ])
        .unwrap();
        assert!(
            matches!(got, Outcome::Frozen(f) if f.amount_not_frozen_fen == 0 && f.earlier_freezes.is_empty())
        );
    }

    #[test]
    fn ack_partial_with_onward_transfers() {
        let got = parse_ack(&[
            "--partial",
            "--held-fen",
            "5",
            "--balance-fen",
            "0",
            "--onward",
            "CCB:6217000000009999:Next Holder:7:2026-11-28T07:01:00.5Z",
        ])
        .unwrap();
        assert!(
            matches!(got, Outcome::Partial(p) if p.onward_transfers.len() == 1
            && p.onward_transfers[0].time == Some(rfc("2026-11-28T07:01:00.5Z")))
        );
    }

    #[test]
    fn onward_transfer_specs() {
        let t = parse_onward_transfer("CCB:6217:A:B:C:12:2026-11-28T07:01:00Z").unwrap();
        assert_eq!(
            (
                t.account_name.as_str(),
                t.amount_fen,
                t.transaction_reference.as_str()
            ),
            ("A:B:C", 12, "")
        );
        for bad in [
            "",
            "CCB:6217:Name:12",
            "CCB:6217:Name:2026-11-28T07:01:00Z",
            "CCB:6217:Name:x:2026-11-28T07:01:00Z",
            "CCB:6217:Name:12:2026-11-28T07:01Z",
            "CCB:6217:Name:12:2026-11-28T07:01:00Z:ref=",
            ":6217:Name:12:2026-11-28T07:01:00Z",
            "CCB:6217: :12:2026-11-28T07:01:00Z",
        ] {
            let err = parse_onward_transfer(bad).unwrap_err();
            assert!(
                err.contains("INST:ACCOUNT:NAME:AMOUNT_FEN:TIME_RFC3339"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn earlier_freeze_specs() {
        for bad in [
            "",
            "Court:5",
            "Court:2027-01-01T00:00:00Z",
            ":5:2027-01-01T00:00:00Z",
            "Court:five:2027-01-01T00:00:00Z",
            "Court:5:2027-01-01",
        ] {
            let err = parse_earlier_freeze(bad).unwrap_err();
            assert!(
                err.contains("AUTHORITY:AMOUNT_FEN:EXPIRES_RFC3339"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            split_time_suffix("a:b:2026-11-28T07:00:00-07:30"),
            Some(("a:b", rfc("2026-11-28T14:30:00Z")))
        );
        assert_eq!(split_time_suffix("no time here"), None);
    }

    #[derive(Debug, Parser)]
    struct C {
        #[command(flatten)]
        check: CheckArgs,
    }

    #[test]
    fn check_takes_several_numbers_of_one_type() {
        let c = C::try_parse_from([
            "check",
            "--doc-type",
            "uscc",
            "--doc-number",
            "91350100M000100Y43,91350100M000100Y44",
            "--doc-number",
            "X1",
            "--mirror",
            "m.json",
        ])
        .unwrap()
        .check;
        let subjects = c.subjects();
        assert_eq!(subjects.len(), 3);
        assert!(
            subjects
                .iter()
                .all(|s| s.document_type == pb::DocumentType::UnifiedSocialCreditCode as i32)
        );
        assert_eq!(subjects[2].document_number, "X1");
        assert_eq!(c.mirror, Some(PathBuf::from("m.json")));
        assert!(C::try_parse_from(["check", "--doc-type", "uscc"]).is_err());
        assert!(C::try_parse_from(["check", "--doc-number", "1"]).is_err());
        assert!(C::try_parse_from(["check", "--doc-type", "id", "--doc-number", "1"]).is_err());
    }

    #[test]
    fn check_answers_from_the_mirror_say_so() {
        let listed = CheckResult {
            subject: Some(pb::SubjectRef {
                document_type: pb::DocumentType::ResidentId as i32,
                document_number: "11010519491231002X".into(),
            }),
            listed: true,
            effects: Some(pb::Effects {
                bank_non_counter_suspended: true,
                payment_accounts_suspended: true,
                no_new_accounts: true,
            }),
            listed_until: Some(rfc("2031-11-28T08:40:00Z")),
        };
        assert_eq!(
            render::check_line(&listed),
            "resident-id 11010519491231002X  listed until 2031-11-28T08:40:00Z  effects: non-counter suspended, payment accounts suspended, no new accounts"
        );
        let v = with_source(
            render::check_json(&listed),
            json!({ "source": "mirror", "mirror_version": 7 }),
        );
        assert_eq!(
            (
                &v["event"],
                &v["listed"],
                &v["source"],
                &v["mirror_version"]
            ),
            (&json!("check"), &json!(true), &json!("mirror"), &json!(7))
        );
        assert_eq!(v["effects"]["no_new_accounts"], true);
        assert_eq!(v["listed_until"], "2031-11-28T08:40:00Z");
        let not_listed = CheckResult {
            listed: false,
            effects: None,
            listed_until: None,
            ..listed
        };
        assert_eq!(
            render::check_line(&not_listed),
            "resident-id 11010519491231002X  not listed"
        );
        let v = render::check_json(&not_listed);
        assert_eq!(
            (&v["listed"], &v["effects"], &v["listed_until"]),
            (&json!(false), &json!(null), &json!(null))
        );
    }

    #[test]
    fn listen_flags() {
        #[derive(Debug, Parser)]
        struct L {
            #[command(flatten)]
            listen: ListenArgs,
        }
        let l = L::try_parse_from([
            "listen",
            "--auto-ack",
            "--onward",
            "CCB:6217000000009999:Next Holder:100",
            "--onward",
            "ABC:6228:X:50",
            "--earlier-freeze",
            "Court:700",
        ])
        .unwrap()
        .listen;
        assert_eq!((l.onward.len(), l.onward_depth), (2, 1));
        assert_eq!(l.earlier_freeze.map(|e| e.amount_fen), Some(700));
        assert!(L::try_parse_from(["listen", "--onward", "CCB:6217:X:5"]).is_err());
        assert!(L::try_parse_from(["listen", "--auto-ack", "--onward", "CCB:6217:X:500"]).is_err());
        assert!(L::try_parse_from(["listen", "--earlier-freeze", "Court:5"]).is_err());
    }
}
