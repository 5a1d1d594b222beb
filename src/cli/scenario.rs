//! `stophub scenario`: a police scenario for demos and the compose test. It submits stop
//! notices that the simulated banks of `docker-compose.yml` answer (a partial hold with the rest
//! chased to a second institution, and a full hold), watches each until every instruction is
//! answered, checks each outcome against what the scenario expects, and prints the oversight
//! statistics. Exit 0 only when every instruction reached its expected outcome.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::Conn;
use crate::client;
use crate::clock::{Clock, SystemClock};
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::oversight::v1::GetStatsRequest;
use crate::proto::stophub::police::v1::{FollowFunds, SubmitNoticeRequest, WatchNoticeRequest};

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[command(flatten)]
    conn: Conn,
    /// Notices to submit.
    #[arg(long, default_value_t = 3)]
    notices: u32,
    /// Distinguishes this run's request ids from another run's [default: the clock].
    #[arg(long)]
    run_id: Option<String>,
    /// Seconds to wait for every instruction of a notice to be answered.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Also check that each of ICBC, CMB and CCB received exactly this many instructions in
    /// all (every notice reached its bank once, whatever restarts happened).
    #[arg(long)]
    expect_total: Option<u64>,
}

fn notice(run: &str, n: u32) -> SubmitNoticeRequest {
    let suspect = |institution: &str, account: String, amount_fen| pb::SuspectAccount {
        institution_code: institution.into(),
        account_number: account,
        account_name: format!("Scenario Suspect {n}"),
        account_kind: pb::AccountKind::BankAccount as i32,
        amount_fen,
        follows_instruction_id: String::new(),
    };
    SubmitNoticeRequest {
        request_id: format!("scenario-{run}-{n}"),
        case_reference: format!("SCENARIO-{run}-{n}"),
        action: pb::Action::StopPayment as i32,
        victim_transfer: Some(pb::VictimTransfer {
            institution_code: "CMB".into(),
            account_number: "6214000011112222".into(),
            account_name: "Scenario Victim".into(),
            currency: "CNY".into(),
            amount_fen: 3_000_000,
            transfer_time: Some(crate::service::convert::timestamp_to_proto(
                SystemClock.now().plus_millis(-3_600_000),
            )),
            transaction_reference: format!("SCN-{run}-{n}"),
        }),
        // ICBC's simulated ledger holds half of an account ending in 7 and reports the rest
        // as gone on to CCB; CMB holds all of an account ending in 1.
        suspect_accounts: vec![
            suspect(
                "ICBC",
                format!("6222{:06}{n:04}7", run_number(run)),
                2_000_000,
            ),
            suspect(
                "CMB",
                format!("6214{:06}{n:04}1", run_number(run)),
                1_000_000,
            ),
        ],
        follow_funds: Some(FollowFunds {
            enabled: true,
            max_depth: 2,
        }),
        ..Default::default()
    }
}

/// Fresh accounts per run: the simulated banks remember what they already hold.
fn run_number(run: &str) -> u64 {
    run.bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000
}

fn state(i: &pb::Instruction) -> pb::InstructionState {
    pb::InstructionState::try_from(i.state).unwrap_or(pb::InstructionState::Unspecified)
}

/// What each instruction of a scenario notice must end as.
fn expected(i: &pb::Instruction) -> pb::InstructionState {
    let institution = i
        .account
        .as_ref()
        .map(|a| a.institution_code.as_str())
        .unwrap_or("");
    match (institution, i.depth) {
        ("ICBC", _) => pb::InstructionState::Partial,
        (_, 2) => pb::InstructionState::Executed, // the chase to CCB
        _ => pb::InstructionState::Executed,
    }
}

/// Retries through a hub restart: reconnects and tries again until the deadline.
async fn police(
    conn: &Conn,
    deadline: tokio::time::Instant,
) -> anyhow::Result<
    crate::proto::stophub::police::v1::police_service_client::PoliceServiceClient<
        tonic::transport::Channel,
    >,
> {
    loop {
        match conn.channel("police", "PSB-SZ").await {
            Ok(c) => return Ok(client::police(c)),
            Err(e) if tokio::time::Instant::now() < deadline => {
                println!("scenario: cannot reach the hub ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Submits (idempotently: a retry after a hub restart replays the same request id) and
/// watches until every instruction is answered; returns the instructions as last seen.
async fn submit_and_watch(
    conn: &Conn,
    req: SubmitNoticeRequest,
    deadline: tokio::time::Instant,
) -> anyhow::Result<std::collections::BTreeMap<String, pb::Instruction>> {
    loop {
        let attempt = async {
            let mut police = police(conn, deadline).await?;
            let notice = police
                .submit_notice(req.clone())
                .await?
                .into_inner()
                .notice
                .unwrap_or_default();
            println!(
                "scenario: submitted {} ({} instructions)",
                notice.notice_id,
                notice.instructions.len()
            );
            let mut watch = police
                .watch_notice(WatchNoticeRequest {
                    notice_id: notice.notice_id.clone(),
                    until_answered: true,
                })
                .await?
                .into_inner();
            let mut last = std::collections::BTreeMap::new();
            while let Some(ev) = watch.message().await? {
                if let Some(i) = ev.instruction {
                    last.insert(i.instruction_id.clone(), i);
                }
            }
            anyhow::Ok(last)
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(last)) => return Ok(last),
            Ok(Err(e)) => {
                println!("scenario: {e}; trying again (the request id makes it safe)");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_) => anyhow::bail!("not answered in time"),
        }
    }
}

pub async fn run(args: ScenarioArgs) -> anyhow::Result<ExitCode> {
    let run = args
        .run_id
        .clone()
        .unwrap_or_else(|| SystemClock.now().millis().to_string());
    let mut ok = true;
    for n in 0..args.notices {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
        let last = match submit_and_watch(&args.conn, notice(&run, n), deadline).await {
            Ok(last) => last,
            Err(e) => {
                println!("scenario: notice {n}: {e}");
                ok = false;
                continue;
            }
        };
        let chased = last.values().filter(|i| i.depth == 2).count();
        if chased != 1 {
            println!("scenario: notice {n}: expected one chased instruction, found {chased}");
            ok = false;
        }
        for i in last.values() {
            let (got, want) = (state(i), expected(i));
            let institution = i
                .account
                .as_ref()
                .map(|a| a.institution_code.clone())
                .unwrap_or_default();
            let verdict = if got == want { "ok" } else { "UNEXPECTED" };
            println!(
                "scenario:   {} at {institution} (depth {}): {got:?}, expected {want:?}: {verdict}",
                i.instruction_id, i.depth
            );
            ok &= got == want;
        }
    }
    let mut oversight = client::oversight(args.conn.channel("oversight", "PBOC").await?);
    let stats = oversight
        .get_stats(GetStatsRequest::default())
        .await?
        .into_inner();
    println!("scenario: oversight statistics:");
    if let Some(total) = args.expect_total {
        for code in ["ICBC", "CMB", "CCB"] {
            let got = stats
                .institutions
                .iter()
                .find(|s| s.institution_code == code)
                .map_or(0, |s| s.received);
            let answered = stats
                .institutions
                .iter()
                .find(|s| s.institution_code == code)
                .map_or(0, |s| s.answered);
            if got != total || answered != total {
                println!(
                    "scenario: {code} received {got} and answered {answered} instructions, expected exactly {total}"
                );
                ok = false;
            }
        }
    }
    for s in stats.institutions {
        println!(
            "scenario:   {:<8} received {:>4}  answered {:>4}  open {:>3}  overdue {:>3}  ack p50 {} ms  max {} ms",
            s.institution_code,
            s.received,
            s.answered,
            s.open,
            s.overdue,
            s.ack_p50_ms,
            s.ack_max_ms
        );
    }
    println!(
        "scenario: {}",
        if ok {
            "every instruction reached its expected outcome"
        } else {
            "FAILED"
        }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
