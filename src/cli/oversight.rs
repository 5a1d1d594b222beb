//! `stophub oversight list | get | expiring | graph`: the central bank's read-only view of
//! every instruction and case.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::render::{self, ActionName, StateName};
use super::{Conn, EXIT_CODES, time};
use crate::client;
use crate::proto::stophub::oversight::v1::{
    GetCaseGraphRequest, GetInstructionRequest, ListExpiringRequest, ListInstructionsRequest,
};

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
    /// Show the fund-flow graph of any agency's case.
    #[command(after_help = EXIT_CODES)]
    Graph {
        /// The police agency that owns the case, e.g. PSB-SZ.
        #[arg(long, value_name = "CODE")]
        agency: String,
        /// The agency's case reference.
        case_reference: String,
    },
}

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
