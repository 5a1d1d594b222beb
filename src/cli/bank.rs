//! `stophub bank listen | ack`: an institution's side of the hub, and a simulated bank
//! (`listen --auto-ack`) that answers from an in-memory ledger, for demos and tests.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::{Conn, EXIT_CODES, render, time};
use crate::client;
use crate::proto::stophub::bank::v1::acknowledge_request::Outcome;
use crate::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use crate::proto::stophub::bank::v1::{
    AcknowledgeRequest, AcknowledgeResponse, SubscribeRequest, SubscribeResponse,
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
    #[command(after_help = EXIT_CODES)]
    Ack(Box<AckArgs>),
}

const LISTEN_LONG_HELP: &str = concat!(
    "The simulated ledger of --auto-ack gives each account, the first time it is seen, a balance
of twice the amount requested; an account number ending in 7 has half the amount requested
(answered PARTIAL); one ending in 0 does not exist (ACCOUNT_NOT_FOUND). --balance-fen gives
every account that balance instead. Holds are taken off the balance; a zero balance is
answered REJECTED. A redelivered instruction is answered again with the identical answer.

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
    /// Exit when the stream ends or fails instead of reconnecting.
    #[arg(long)]
    once: bool,
    /// Exit 0 after processing this many instructions.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    exit_after: Option<u64>,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("outcome")
        .required(true)
        .args(["executed", "partial", "mismatch", "not_found", "rejected"])
))]
struct AckArgs {
    /// The instruction id (`I...`).
    instruction_id: String,
    /// The whole amount requested is held (needs --held-fen and --balance-fen).
    #[arg(long)]
    executed: bool,
    /// Less than requested is held (needs --held-fen and --balance-fen).
    #[arg(long)]
    partial: bool,
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
        conflicts_with_all = ["mismatch", "not_found", "rejected"]
    )]
    held_fen: Option<i64>,
    /// With --executed or --partial: the account balance after the hold, in fen.
    #[arg(
        long,
        value_name = "FEN",
        allow_negative_numbers = true,
        required_if_eq_any = [("executed", "true"), ("partial", "true")],
        conflicts_with_all = ["mismatch", "not_found", "rejected"]
    )]
    balance_fen: Option<i64>,
    /// With --executed or --partial: when the hold was applied, RFC 3339 [default: now].
    /// To repeat an answer (a no-op), pass the same instant again.
    #[arg(
        long,
        value_name = "RFC3339",
        value_parser = time::parse,
        conflicts_with_all = ["mismatch", "not_found", "rejected"]
    )]
    executed_at: Option<prost_types::Timestamp>,
    /// With --mismatch or --not-found: optional free text.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["executed", "partial", "rejected"])]
    detail: Option<String>,
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
    let mut client = client::bank(args.conn.channel(ROLE, DEFAULT_ORG).await?);
    match args.command {
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

/// The outcome `bank ack` sends; clap has already enforced exactly one outcome and the
/// amounts it needs.
fn outcome(args: &AckArgs, now: prost_types::Timestamp) -> Outcome {
    let held = args.held_fen.unwrap_or_default();
    let balance = args.balance_fen.unwrap_or_default();
    let executed_at = Some(args.executed_at.unwrap_or(now));
    let detail = args.detail.clone().unwrap_or_default();
    if args.executed {
        Outcome::Executed(pb::Executed {
            amount_held_fen: held,
            balance_fen: balance,
            executed_at,
            ..Default::default()
        })
    } else if args.partial {
        Outcome::Partial(pb::Partial {
            amount_held_fen: held,
            balance_fen: balance,
            executed_at,
            ..Default::default()
        })
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
            format!("ack   {}{note}", render::instruction_line(instruction))
        },
        || json!({ "event": "ack", "duplicate": duplicate, "instruction": render::instruction_json(instruction) }),
    )
}

fn print_delivery(
    out: render::Out,
    d: &SubscribeResponse,
    i: &pb::Instruction,
) -> anyhow::Result<()> {
    out.emit(
        || {
            let (name, case) = (
                i.account.as_ref().map_or("", |a| a.account_name.as_str()),
                &i.case_reference,
            );
            let again = if d.redelivery { "  (redelivery)" } else { "" };
            format!(
                "#{:<5} {}  {name}  case {case}{again}",
                d.sequence,
                render::instruction_line(i)
            )
        },
        || {
            json!({
                "event": "delivery",
                "sequence": d.sequence,
                "redelivery": d.redelivery,
                "instruction": render::instruction_json(i),
            })
        },
    )
}

/// The simulated bank's accounts: balances set on first sight, reduced by every hold.
#[derive(Debug, Default)]
struct Ledger {
    fixed_balance: Option<i64>,
    balances: HashMap<String, i64>,
}

impl Ledger {
    /// What the simulated bank answers to a request to hold `requested` fen on `account`.
    fn answer(&mut self, account: &str, requested: i64, now: prost_types::Timestamp) -> Outcome {
        if self.fixed_balance.is_none() && account.ends_with('0') {
            let detail = "simulated ledger: no such account".to_owned();
            return Outcome::AccountNotFound(pb::AccountNotFound { detail });
        }
        let initial = self.fixed_balance.unwrap_or(if account.ends_with('7') {
            requested / 2
        } else {
            requested.saturating_mul(2)
        });
        let balance = self.balances.entry(account.to_owned()).or_insert(initial);
        let executed_at = Some(now);
        if *balance >= requested {
            *balance -= requested;
            Outcome::Executed(pb::Executed {
                amount_held_fen: requested,
                balance_fen: *balance,
                executed_at,
                ..Default::default()
            })
        } else if *balance > 0 {
            let held = std::mem::take(balance);
            Outcome::Partial(pb::Partial {
                amount_held_fen: held,
                balance_fen: 0,
                executed_at,
                ..Default::default()
            })
        } else {
            let reason = "simulated ledger: the balance is zero; nothing to hold".to_owned();
            Outcome::Rejected(pb::Rejected { reason })
        }
    }
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
    ledger: Ledger,
    /// Every answer sent, by instruction id, so that a redelivery gets the identical answer.
    answers: HashMap<String, Outcome>,
    last_sequence: u64,
    processed: u64,
}

impl Listener {
    fn new(args: &ListenArgs, out: render::Out) -> Self {
        Self {
            out,
            auto_ack: args.auto_ack,
            exit_after: args.exit_after,
            ledger: Ledger {
                fixed_balance: args.balance_fen,
                ..Ledger::default()
            },
            answers: HashMap::new(),
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
        if self.auto_ack && instruction.acknowledgement.is_none() {
            let request = AcknowledgeRequest {
                instruction_id: instruction.instruction_id.clone(),
                outcome: Some(self.answer_for(instruction)),
            };
            let response = client.acknowledge(request).await?.into_inner();
            print_ack(self.out, &response)?;
        }
        self.last_sequence = self.last_sequence.max(d.sequence);
        self.processed += 1;
        Ok(())
    }

    /// The answer already sent for this instruction, or a new one from the ledger.
    fn answer_for(&mut self, i: &pb::Instruction) -> Outcome {
        if let Some(answer) = self.answers.get(&i.instruction_id) {
            return answer.clone();
        }
        let answer = match &i.account {
            Some(a) => self
                .ledger
                .answer(&a.account_number, a.amount_fen, time::now()),
            None => Outcome::Rejected(pb::Rejected {
                reason: "no account in the instruction".to_owned(),
            }),
        };
        self.answers
            .insert(i.instruction_id.clone(), answer.clone());
        answer
    }
}

/// Failures worth a reconnection: the connection or the hub went away. A refusal (bad
/// certificate, bad answer) is not retried.
fn transient(e: &anyhow::Error) -> bool {
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
    use clap::Parser;

    fn at() -> prost_types::Timestamp {
        time::from_millis(1_000)
    }

    #[test]
    fn ledger_answers_by_account_number() {
        let mut ledger = Ledger::default();
        let executed = pb::Executed {
            amount_held_fen: 100,
            balance_fen: 100,
            executed_at: Some(at()),
            ..Default::default()
        };
        assert_eq!(
            ledger.answer("6222020200001234", 100, at()),
            Outcome::Executed(executed)
        );
        let executed = pb::Executed {
            amount_held_fen: 100,
            balance_fen: 0,
            executed_at: Some(at()),
            ..Default::default()
        };
        assert_eq!(
            ledger.answer("6222020200001234", 100, at()),
            Outcome::Executed(executed)
        );
        assert!(matches!(
            ledger.answer("6222020200001234", 100, at()),
            Outcome::Rejected(_)
        ));
        let partial = pb::Partial {
            amount_held_fen: 50,
            balance_fen: 0,
            executed_at: Some(at()),
            ..Default::default()
        };
        assert_eq!(
            ledger.answer("6222020200001237", 100, at()),
            Outcome::Partial(partial)
        );
        assert!(matches!(
            ledger.answer("6222020200001230", 100, at()),
            Outcome::AccountNotFound(_)
        ));
    }

    #[test]
    fn fixed_balance_applies_to_every_account() {
        let mut ledger = Ledger {
            fixed_balance: Some(30),
            ..Ledger::default()
        };
        assert!(
            matches!(ledger.answer("6222020200001230", 100, at()), Outcome::Partial(p) if p.amount_held_fen == 30)
        );
        assert!(
            matches!(ledger.answer("6222020200001231", 10, at()), Outcome::Executed(e) if e.balance_fen == 20)
        );
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
        for bad in [
            &[][..],
            &["--executed"],
            &["--executed", "--not-found"],
            &["--not-found", "--held-fen", "5"],
            &["--mismatch", "colour"],
            &["--rejected", "x", "--detail", "y"],
        ] {
            assert!(parse_ack(bad).is_err(), "{bad:?}");
        }
    }
}
