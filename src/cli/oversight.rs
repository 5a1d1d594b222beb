//! `stophub oversight list | get | expiring | overdue | graph | case | listing | appeal |
//! audit | verify | stats | amounts | blacklist`: the central bank's view of every instruction
//! and case (read-only), of the account blacklist, its decisions on appeals against listings,
//! and its reports (tables for people, rendered by [`report`]).

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::render::{self, ActionName, StateName};
use super::{Conn, EXIT_CODES, SubjectArgs, default_request_id, time};
use crate::client;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::oversight::v1::oversight_service_client::OversightServiceClient;
use crate::proto::stophub::oversight::v1::{
    AmountGrouping, AuditRecord, DecideAppealRequest, GetAmountsRequest,
    GetBlacklistFiguresRequest, GetCaseGraphRequest, GetCaseRequest, GetInstructionRequest,
    GetListingRequest, GetStatsRequest, ListExpiringRequest, ListInstructionsRequest,
    RecordAppealRequest, StreamAuditRequest, VerifyAuditRequest, Window,
};

/// The report rendering of this command (a sibling file, used by no other role).
#[path = "report.rs"]
mod report;

const ROLE: &str = "oversight";
const DEFAULT_ORG: &str = "PBOC";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct OversightArgs {
    #[command(flatten)]
    pub(super) conn: Conn,
    #[command(subcommand)]
    command: OversightCommand,
}

#[derive(Debug, Subcommand)]
enum OversightCommand {
    /// List instructions matching every filter given, oldest first.
    #[command(after_help = EXIT_CODES)]
    List(ListArgs),
    /// Show one instruction in full.
    #[command(after_help = EXIT_CODES)]
    Get {
        /// The instruction id (`I...`).
        instruction_id: String,
    },
    /// Stops and freezes in force whose term ends within a window, soonest first.
    #[command(after_help = EXIT_CODES)]
    Expiring(ExpiringArgs),
    /// Every instruction not answered by its deadline (state overdue), oldest first.
    #[command(after_help = EXIT_CODES)]
    Overdue {
        /// Only instructions addressed to this institution.
        #[arg(long, value_name = "CODE")]
        institution: Option<String>,
    },
    /// Show the fund-flow graph of any agency's case.
    #[command(after_help = EXIT_CODES)]
    Graph {
        /// The police agency that owns the case, e.g. PSB-SZ.
        #[arg(long, value_name = "CODE")]
        agency: String,
        /// The agency's case reference.
        case_reference: String,
    },
    /// One case in full: its notices, instructions, fund-flow graph and audit records.
    #[command(after_help = EXIT_CODES)]
    Case {
        /// The police agency that owns the case, e.g. PSB-SZ.
        #[arg(long, value_name = "CODE")]
        agency: String,
        /// The agency's case reference.
        case_reference: String,
    },
    /// Show a subject's blacklist entry, in any state, unmasked.
    #[command(after_help = EXIT_CODES)]
    Listing(SubjectArgs),
    /// Record or decide a listed subject's appeal (申诉).
    #[command(after_help = EXIT_CODES, subcommand)]
    Appeal(AppealCommand),
    /// The audit trail: every change and refusal, who ordered it, chained by hash.
    #[command(after_help = EXIT_CODES)]
    Audit {
        /// Records after this position; 0 for all.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: u64,
        /// Keep streaming new records as they are written.
        #[arg(long)]
        follow: bool,
    },
    /// Walk the whole audit chain on the hub: exit 0 when intact, 4 at the first broken link.
    #[command(after_help = EXIT_CODES)]
    Verify,
    /// Statistics per institution: counts, time to acknowledge, outcomes.
    ///
    /// Over the instructions the hub accepted in the window: received, answered, open,
    /// overdue, answered late, time from acceptance to answer (p50/p95/p99/max), then the
    /// outcomes by action and state.
    #[command(after_help = EXIT_CODES)]
    Stats(StatsArgs),
    /// Amounts requested, held, not held and released, by case, institution or day.
    ///
    /// Over the stop-payments and freezes the hub accepted in the window. "Not held" counts
    /// answered instructions only, so requested exceeds held plus not held while some are
    /// unanswered. Tables show fen and yuan; --json gives fen.
    #[command(after_help = EXIT_CODES)]
    Amounts(AmountsArgs),
    /// Blacklist figures: entries in force by legal basis, changes in a period.
    ///
    /// Entries in force now, by legal basis; then the listings, extensions, delistings,
    /// lapses and appeals recorded, upheld and dismissed in the window.
    #[command(after_help = EXIT_CODES)]
    Blacklist(WindowArgs),
}

/// A window on the hub's clock, `--from` inclusive, `--to` exclusive; both open by default.
#[derive(Debug, Args)]
struct WindowArgs {
    /// From this instant, inclusive (RFC 3339) [default: the beginning].
    #[arg(long, value_name = "RFC3339", value_parser = time::parse)]
    from: Option<prost_types::Timestamp>,
    /// Before this instant, exclusive (RFC 3339) [default: no end].
    #[arg(long, value_name = "RFC3339", value_parser = time::parse)]
    to: Option<prost_types::Timestamp>,
}

impl WindowArgs {
    fn to_proto(&self) -> Option<Window> {
        (self.from.is_some() || self.to.is_some()).then_some(Window {
            from: self.from,
            to: self.to,
        })
    }

    fn text(&self) -> String {
        report::window_text(self.from.as_ref(), self.to.as_ref())
    }

    fn json(&self) -> serde_json::Value {
        report::window_json(self.from.as_ref(), self.to.as_ref())
    }
}

#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    window: WindowArgs,
    /// Only this institution [default: every institution with instructions in the window].
    #[arg(long, value_name = "CODE")]
    institution: Option<String>,
}

/// What `amounts --by` groups on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GroupBy {
    /// The case, as AGENCY/CASE_REFERENCE.
    Case,
    /// The institution holding the account.
    Institution,
    /// The UTC day the hub accepted the instruction (YYYY-MM-DD).
    Day,
}

impl GroupBy {
    fn to_proto(self) -> AmountGrouping {
        match self {
            GroupBy::Case => AmountGrouping::Case,
            GroupBy::Institution => AmountGrouping::Institution,
            GroupBy::Day => AmountGrouping::Day,
        }
    }

    fn name(self) -> &'static str {
        match self {
            GroupBy::Case => "case",
            GroupBy::Institution => "institution",
            GroupBy::Day => "day",
        }
    }
}

#[derive(Debug, Args)]
struct AmountsArgs {
    /// What each row totals.
    #[arg(long, value_enum, value_name = "GROUPING")]
    by: GroupBy,
    #[command(flatten)]
    window: WindowArgs,
    /// At most this many rows per page, 1-1000 [default: the hub's, 100].
    #[arg(long, value_name = "N")]
    page_size: Option<u32>,
    /// Continue from the token printed at the end of the previous page.
    #[arg(long, value_name = "TOKEN")]
    page_token: Option<String>,
    /// Fetch every page, as one table.
    #[arg(long)]
    all: bool,
}

impl AmountsArgs {
    fn request(&self, page_token: String) -> GetAmountsRequest {
        GetAmountsRequest {
            window: self.window.to_proto(),
            group_by: self.by.to_proto() as i32,
            page_size: self.page_size.unwrap_or_default(),
            page_token,
        }
    }
}

#[derive(Debug, Subcommand)]
enum AppealCommand {
    /// Record a listed subject's appeal; idempotent on --request-id.
    #[command(after_help = EXIT_CODES)]
    Record(RecordAppealArgs),
    /// Decide an appeal, once: upheld removes the listing (every institution learns of it at
    /// once); dismissed leaves it.
    #[command(after_help = EXIT_CODES, after_long_help = DECIDE_LONG_HELP)]
    Decide(DecideAppealArgs),
}

#[derive(Debug, Args)]
struct RecordAppealArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// The appellant's grounds (1-1024 characters).
    #[arg(long, value_name = "TEXT")]
    grounds: String,
    /// Idempotency key. Pass the same value to retry safely [default: generated from the time
    /// and process id].
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["upheld", "dismissed"])))]
struct DecideAppealArgs {
    /// The appeal id, as `appeal record` printed it.
    appeal_id: String,
    /// The appeal succeeds: the listing is removed.
    #[arg(long)]
    upheld: bool,
    /// The appeal fails: the listing stays.
    #[arg(long)]
    dismissed: bool,
    /// Why (1-256 characters).
    #[arg(long, value_name = "TEXT")]
    reason: String,
}

const DECIDE_LONG_HELP: &str = concat!(
    "Exactly one of --upheld and --dismissed. Prints the appeal and the entry after the decision.

Example:
  stophub oversight appeal decide A000000000001 --upheld --reason 'identity was stolen'

",
    super::exit_codes!()
);

#[derive(Debug, Args)]
struct ExpiringArgs {
    /// The window from now (hub clock), in hours, 1-8760 [default: the hub's, 240 (10 days)].
    #[arg(long, value_name = "N")]
    within_hours: Option<u32>,
    /// Only this action; repeat or separate with commas for both [default: both].
    #[arg(long, value_name = "ACTION", value_enum, value_delimiter = ',')]
    action: Vec<ActionName>,
    /// At most this many, 1-1000 [default: the hub's, 100].
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only instructions in this state; repeat or separate with commas for several.
    #[arg(long, value_name = "STATE", value_enum, value_delimiter = ',')]
    state: Vec<StateName>,
    /// Only instructions addressed to this institution.
    #[arg(long, value_name = "CODE")]
    institution: Option<String>,
    /// Only instructions of this case.
    #[arg(long = "case", value_name = "REF")]
    case: Option<String>,
    /// Only instructions the hub accepted at or after this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = time::parse)]
    from: Option<prost_types::Timestamp>,
    /// Only instructions the hub accepted before this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = time::parse)]
    to: Option<prost_types::Timestamp>,
    /// At most this many per page, 1-1000 [default: the hub's, 100].
    #[arg(long, value_name = "N")]
    page_size: Option<u32>,
    /// Continue from the token printed at the end of the previous page.
    #[arg(long, value_name = "TOKEN")]
    page_token: Option<String>,
    /// Fetch every page, not just the first.
    #[arg(long)]
    all: bool,
}

impl ListArgs {
    fn request(&self, page_token: String) -> ListInstructionsRequest {
        ListInstructionsRequest {
            states: self.state.iter().map(|s| s.to_proto() as i32).collect(),
            institution_code: self.institution.clone().unwrap_or_default(),
            case_reference: self.case.clone().unwrap_or_default(),
            created_from: self.from,
            created_to: self.to,
            page_size: self.page_size.unwrap_or_default(),
            page_token,
        }
    }
}

pub async fn run(args: OversightArgs) -> anyhow::Result<()> {
    let out = args.conn.out();
    let mut client = client::oversight(args.conn.channel(ROLE, DEFAULT_ORG).await?);
    match args.command {
        OversightCommand::List(list) => {
            let mut token = list.page_token.clone().unwrap_or_default();
            let mut shown = 0usize;
            loop {
                let page = client
                    .list_instructions(list.request(token))
                    .await?
                    .into_inner();
                shown += page.instructions.len();
                for i in &page.instructions {
                    out.emit(
                        || render::instruction_line(i),
                        || json!({ "event": "instruction", "instruction": render::instruction_json(i) }),
                    )?;
                }
                token = page.next_page_token;
                if token.is_empty() {
                    if shown == 0 && !out.json {
                        out.emit(|| "no instructions match".to_owned(), || json!({}))?;
                    }
                    return Ok(());
                }
                if !list.all {
                    return out.emit(
                        || format!("more: repeat with --page-token {token}"),
                        || json!({ "event": "next_page", "next_page_token": token }),
                    );
                }
            }
        }
        OversightCommand::Audit { after, follow } => {
            let mut stream = client
                .stream_audit(StreamAuditRequest { after_seq: after })
                .await?
                .into_inner();
            loop {
                // Without --follow, stop once the stream has nothing more right now.
                let next = if follow {
                    stream.message().await?
                } else {
                    match tokio::time::timeout(
                        std::time::Duration::from_millis(500),
                        stream.message(),
                    )
                    .await
                    {
                        Ok(m) => m?,
                        Err(_) => None,
                    }
                };
                let Some(r) = next else { return Ok(()) };
                out.emit(
                    || audit_line(&r),
                    || json!({ "event": "audit", "record": audit_json(&r) }),
                )?;
            }
        }
        OversightCommand::Verify => {
            let v = client
                .verify_audit(VerifyAuditRequest {})
                .await?
                .into_inner();
            out.emit(
                || {
                    if v.intact {
                        format!("audit chain intact: {} records, head {}", v.count, v.head_hash)
                    } else {
                        format!("audit chain BROKEN at record {}: {} ({} records before it are intact)", v.broken_at_seq, v.problem, v.count)
                    }
                },
                || json!({ "event": "verify", "intact": v.intact, "count": v.count, "head_hash": v.head_hash, "broken_at_seq": v.broken_at_seq, "problem": v.problem }),
            )?;
            if !v.intact {
                std::process::exit(4);
            }
            Ok(())
        }
        OversightCommand::Get { instruction_id } => {
            let response = client
                .get_instruction(GetInstructionRequest { instruction_id })
                .await?
                .into_inner();
            let i = response
                .instruction
                .context("the hub answered without an instruction")?;
            out.emit(
                || render::instruction_detail(&i),
                || json!({ "event": "instruction", "instruction": render::instruction_json(&i) }),
            )
        }
        OversightCommand::Expiring(args) => {
            let request = ListExpiringRequest {
                within_hours: args.within_hours.unwrap_or_default(),
                actions: args.action.iter().map(|a| a.to_proto() as i32).collect(),
                limit: args.limit.unwrap_or_default(),
            };
            let response = client.list_expiring(request).await?.into_inner();
            let now = time::now();
            for i in &response.instructions {
                out.emit(
                    || format!("{:<10} {}", expires_in(i, &now), render::instruction_line(i)),
                    || json!({ "event": "instruction", "instruction": render::instruction_json(i) }),
                )?;
            }
            Ok(())
        }
        OversightCommand::Overdue { institution } => {
            let request = ListInstructionsRequest {
                states: vec![pb::InstructionState::Overdue as i32],
                institution_code: institution.unwrap_or_default(),
                ..Default::default()
            };
            let mut page_token = String::new();
            let mut shown = 0usize;
            loop {
                let page = client
                    .list_instructions(ListInstructionsRequest {
                        page_token,
                        ..request.clone()
                    })
                    .await?
                    .into_inner();
                shown += page.instructions.len();
                for i in &page.instructions {
                    out.emit(
                        || render::instruction_line(i),
                        || json!({ "event": "instruction", "instruction": render::instruction_json(i) }),
                    )?;
                }
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            if shown == 0 && !out.json {
                out.emit(|| "no instructions match".to_owned(), || json!({}))?;
            }
            Ok(())
        }
        OversightCommand::Stats(stats) => {
            let request = GetStatsRequest {
                window: stats.window.to_proto(),
                institution_code: stats.institution.clone().unwrap_or_default(),
            };
            let response = client.get_stats(request).await?.into_inner();
            if out.json {
                for s in &response.institutions {
                    out.emit(
                        String::new,
                        || json!({ "event": "stats", "stats": report::stats_json(s) }),
                    )?;
                }
                return Ok(());
            }
            let window = stats.window.text();
            out.emit(
                || {
                    if response.institutions.is_empty() {
                        format!("no instructions accepted {window}")
                    } else {
                        format!(
                            "instructions accepted {window}\n\n{}",
                            report::stats_tables(&response.institutions)
                        )
                    }
                },
                || json!({}),
            )
        }
        OversightCommand::Amounts(amounts) => amounts_report(&mut client, out, &amounts).await,
        OversightCommand::Blacklist(window) => {
            let request = GetBlacklistFiguresRequest {
                window: window.to_proto(),
            };
            let f = client.get_blacklist_figures(request).await?.into_inner();
            out.emit(
                || report::blacklist_text(&f, &window.text()),
                || {
                    json!({
                        "event": "blacklist_figures",
                        "window": window.json(),
                        "figures": report::blacklist_json(&f),
                    })
                },
            )
        }
        OversightCommand::Case {
            agency,
            case_reference,
        } => {
            let c = client
                .get_case(GetCaseRequest {
                    police_agency: agency.clone(),
                    case_reference: case_reference.clone(),
                })
                .await?
                .into_inner();
            if !out.json {
                return out.emit(
                    || report::case_text(&agency, &case_reference, &c),
                    || json!({}),
                );
            }
            out.emit(String::new, || {
                json!({
                    "event": "case",
                    "police_agency": agency,
                    "case_reference": case_reference,
                    "notice_ids": c.notice_ids,
                })
            })?;
            for i in &c.instructions {
                out.emit(String::new, || {
                    json!({ "event": "instruction", "instruction": render::instruction_json(i) })
                })?;
            }
            if let Some(g) = &c.graph {
                out.emit(
                    String::new,
                    || json!({ "event": "graph", "graph": render::graph_json(g) }),
                )?;
            }
            for r in &c.audit {
                out.emit(
                    String::new,
                    || json!({ "event": "audit", "record": audit_json(r) }),
                )?;
            }
            Ok(())
        }
        OversightCommand::Graph {
            agency,
            case_reference,
        } => {
            let response = client
                .get_case_graph(GetCaseGraphRequest {
                    police_agency: agency,
                    case_reference,
                })
                .await?
                .into_inner();
            let graph = response.graph.context("the hub answered without a graph")?;
            out.emit(
                || render::graph_lines(&graph),
                || json!({ "event": "graph", "graph": render::graph_json(&graph) }),
            )
        }
        OversightCommand::Listing(subject) => {
            let request = GetListingRequest {
                subject: Some(subject.to_proto()),
            };
            let response = client.get_listing(request).await?.into_inner();
            let entry = response
                .entry
                .context("the hub answered without an entry")?;
            out.emit(
                || render::entry_detail(&entry),
                || json!({ "event": "listing", "entry": render::entry_json(&entry) }),
            )
        }
        OversightCommand::Appeal(AppealCommand::Record(record)) => {
            let request = RecordAppealRequest {
                request_id: record.request_id.unwrap_or_else(default_request_id),
                subject: Some(record.subject.to_proto()),
                grounds: record.grounds,
            };
            let response = client.record_appeal(request).await?.into_inner();
            let appeal = response
                .appeal
                .context("the hub answered without an appeal")?;
            out.emit(
                || render::appeal_detail(&appeal),
                || json!({ "event": "appeal", "appeal": render::appeal_json(&appeal) }),
            )
        }
        OversightCommand::Appeal(AppealCommand::Decide(decide)) => {
            let response = client
                .decide_appeal(decide_request(decide))
                .await?
                .into_inner();
            let appeal = response
                .appeal
                .context("the hub answered without an appeal")?;
            let entry = response.entry;
            out.emit(
                || match &entry {
                    Some(e) => format!(
                        "{}\nthe listing now:\n{}",
                        render::appeal_detail(&appeal),
                        render::entry_detail(e)
                    ),
                    None => render::appeal_detail(&appeal),
                },
                || {
                    json!({
                        "event": "appeal",
                        "appeal": render::appeal_json(&appeal),
                        "entry": entry.as_ref().map_or(serde_json::Value::Null, render::entry_json),
                    })
                },
            )
        }
    }
}

/// `amounts`: one page, or with --all every page as one table; the token for the next page
/// otherwise, like `list`.
async fn amounts_report(
    client: &mut OversightServiceClient<tonic::transport::Channel>,
    out: render::Out,
    args: &AmountsArgs,
) -> anyhow::Result<()> {
    let by = args.by.name();
    let mut token = args.page_token.clone().unwrap_or_default();
    let mut rows = Vec::new();
    loop {
        let page = client.get_amounts(args.request(token)).await?.into_inner();
        if out.json {
            for r in &page.rows {
                out.emit(
                    String::new,
                    || json!({ "event": "amount", "amount": report::amount_json(by, r) }),
                )?;
            }
        } else {
            rows.extend(page.rows);
        }
        token = page.next_page_token;
        if token.is_empty() || !args.all {
            break;
        }
    }
    if !out.json {
        let window = args.window.text();
        // A total only when the table holds every row of the window.
        let whole = token.is_empty() && args.page_token.is_none();
        out.emit(
            || {
                if rows.is_empty() {
                    format!("no stop-payments or freezes accepted {window}")
                } else {
                    format!(
                        "stop-payments and freezes accepted {window}, by {by}\n\n{}",
                        report::amounts_table(by, &rows, whole)
                    )
                }
            },
            || json!({}),
        )?;
    }
    if token.is_empty() {
        return Ok(());
    }
    out.emit(
        || format!("more: repeat with --page-token {token}"),
        || json!({ "event": "next_page", "next_page_token": token }),
    )
}

/// The decision `appeal decide` sends; clap has already enforced exactly one of --upheld and
/// --dismissed.
fn decide_request(args: DecideAppealArgs) -> DecideAppealRequest {
    DecideAppealRequest {
        appeal_id: args.appeal_id,
        upheld: args.upheld,
        reason: args.reason,
    }
}

/// `in 47 h`: how long until the instruction's term ends, by this machine's clock.
fn expires_in(
    i: &crate::proto::stophub::common::v1::Instruction,
    now: &prost_types::Timestamp,
) -> String {
    let ms = |t: &prost_types::Timestamp| t.seconds * 1000 + i64::from(t.nanos / 1_000_000);
    i.effective_until.as_ref().map_or_else(
        || "-".to_owned(),
        |t| format!("in {}", render::duration(ms(t) - ms(now))),
    )
}

/// One audit record on one line.
pub fn audit_line(r: &AuditRecord) -> String {
    let items: Vec<String> = r
        .items
        .iter()
        .map(|i| format!("{} {}: {}", i.kind, i.id, i.detail))
        .collect();
    format!(
        "#{:<6} {}  {:<22} {:<15} {}{}{}",
        r.seq,
        r.at.as_ref().map(time::format).unwrap_or_default(),
        r.actor,
        r.action,
        r.outcome,
        if items.is_empty() { "" } else { "  | " },
        items.join(" | ")
    )
}

pub fn audit_json(r: &AuditRecord) -> serde_json::Value {
    json!({
        "seq": r.seq,
        "at": r.at.as_ref().map(time::format),
        "actor": r.actor,
        "action": r.action,
        "outcome": r.outcome,
        "items": r.items.iter().map(|i| json!({"kind": i.kind, "id": i.id, "detail": i.detail})).collect::<Vec<_>>(),
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: OversightCommand,
    }

    fn decide(args: &[&str]) -> Result<DecideAppealRequest, clap::Error> {
        let argv = ["oversight", "appeal", "decide"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            OversightCommand::Appeal(AppealCommand::Decide(d)) => Ok(decide_request(d)),
            other => panic!("decide expected: {other:?}"),
        }
    }

    #[test]
    fn an_appeal_is_decided_one_way() {
        let upheld = decide(&["A1", "--upheld", "--reason", "stolen identity"]).unwrap();
        assert_eq!(
            upheld,
            DecideAppealRequest {
                appeal_id: "A1".into(),
                upheld: true,
                reason: "stolen identity".into(),
            }
        );
        assert!(
            !decide(&["A1", "--dismissed", "--reason", "no grounds"])
                .unwrap()
                .upheld
        );
        for bad in [
            &["A1", "--reason", "r"][..],
            &["A1", "--upheld", "--dismissed", "--reason", "r"],
            &["A1", "--upheld"],
            &["--upheld", "--reason", "r"],
        ] {
            assert!(decide(bad).is_err(), "{bad:?}");
        }
    }

    fn parse(args: &[&str]) -> Result<OversightCommand, clap::Error> {
        let argv = ["oversight"].into_iter().chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.command)
    }

    #[test]
    fn reports_take_a_window() {
        let OversightCommand::Amounts(a) = parse(&[
            "amounts",
            "--by",
            "day",
            "--from",
            "2026-11-28T08:00:00+08:00",
            "--page-size",
            "2",
            "--all",
        ])
        .unwrap() else {
            panic!("amounts expected")
        };
        let r = a.request("2026-11-27".into());
        assert_eq!(r.group_by, AmountGrouping::Day as i32);
        assert_eq!((r.page_size, r.page_token.as_str()), (2, "2026-11-27"));
        let w = r.window.unwrap();
        assert_eq!(
            w.from.map(|t| time::format(&t)).as_deref(),
            Some("2026-11-28T00:00:00Z")
        );
        assert_eq!(w.to, None);
        assert!(a.all);
        for by in ["case", "institution"] {
            assert!(parse(&["amounts", "--by", by]).is_ok(), "{by}");
        }
        assert!(parse(&["amounts"]).is_err());
        assert!(parse(&["amounts", "--by", "week"]).is_err());
        let OversightCommand::Stats(s) = parse(&["stats", "--institution", "ICBC"]).unwrap() else {
            panic!("stats expected")
        };
        // No bounds: no window at all, which the hub reads as all time.
        assert_eq!(s.window.to_proto(), None);
        assert_eq!(s.window.text(), "any time");
        assert!(parse(&["stats", "--to", "2026-11-28"]).is_err());
        assert!(
            parse(&[
                "blacklist",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-12-01T00:00:00Z"
            ])
            .is_ok()
        );
        assert!(matches!(
            parse(&["overdue", "--institution", "CCB"]).unwrap(),
            OversightCommand::Overdue { institution: Some(i) } if i == "CCB"
        ));
        assert!(matches!(
            parse(&["case", "--agency", "PSB-SZ", "SZ-1"]).unwrap(),
            OversightCommand::Case { agency, case_reference } if agency == "PSB-SZ" && case_reference == "SZ-1"
        ));
        assert!(parse(&["case", "SZ-1"]).is_err());
    }

    #[test]
    fn listing_and_record_take_a_subject() {
        let cli = Cli::try_parse_from([
            "oversight",
            "listing",
            "--doc-type",
            "passport",
            "--doc-number",
            "E12345678",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, OversightCommand::Listing(s) if s.to_proto().document_type == crate::proto::stophub::common::v1::DocumentType::Passport as i32)
        );
        let cli = Cli::try_parse_from([
            "oversight",
            "appeal",
            "record",
            "--doc-type",
            "resident-id",
            "--doc-number",
            "11010519491231002X",
            "--grounds",
            "my card was stolen",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, OversightCommand::Appeal(AppealCommand::Record(r)) if r.grounds == "my card was stolen" && r.request_id.is_none())
        );
        assert!(
            Cli::try_parse_from([
                "oversight",
                "appeal",
                "record",
                "--doc-type",
                "resident-id",
                "--doc-number",
                "1"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["oversight", "listing", "--doc-number", "1"]).is_err());
    }
}
