//! `stophub audit verify | export`: the audit chain read straight from a stopped hub's data
//! directory, for an auditor who does not trust the running hub.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::audit::{self, Verdict};
use crate::domain::policy::rfc3339;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the chain offline (stop the hub first: the store is locked while it runs).
    /// Exit 0 when intact, 4 at the first broken link.
    Verify {
        /// The hub's data directory.
        #[arg(long, env = "STOPHUB_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Write the audit log as JSON lines to standard output.
    Export {
        /// The hub's data directory.
        #[arg(long, env = "STOPHUB_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Records after this position; 0 for all.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: u64,
    },
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { data_dir } => {
            let store = Store::open(&data_dir)?;
            match audit::verify(&store)? {
                Verdict::Intact { count, head } => {
                    println!("audit chain intact: {count} records, head {head}");
                    Ok(ExitCode::SUCCESS)
                }
                Verdict::Broken {
                    at_seq,
                    problem,
                    checked,
                } => {
                    println!(
                        "audit chain BROKEN at record {at_seq}: {problem} ({checked} records before it are intact)"
                    );
                    Ok(ExitCode::from(4))
                }
            }
        }
        AuditCommand::Export { data_dir, after } => {
            let store = Store::open(&data_dir)?;
            let mut out = std::io::stdout().lock();
            let mut from = after;
            loop {
                let page = audit::records_after(&store, from, 1024)?;
                let Some(last) = page.last().map(|r| r.seq) else {
                    break;
                };
                for r in &page {
                    let line = json!({
                        "seq": r.seq,
                        "at": rfc3339(r.at),
                        "actor": r.actor,
                        "action": r.action,
                        "outcome": r.outcome,
                        "items": r.items,
                        "prev_hash": r.prev_hash,
                        "hash": r.hash,
                    });
                    writeln!(out, "{line}")?;
                }
                from = last;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
