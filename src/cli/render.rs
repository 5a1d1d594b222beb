//! How the CLI shows hub records: short human lines by default, or one JSON object per line
//! with `--json`. Prost types do not implement `Serialize`, so the JSON is built here by hand:
//! field names as in the proto, enums by their short CLI names (`executed`,
//! `account-not-found`, `stop-payment`, `bank`), amounts as integers in fen, instants as
//! RFC 3339 UTC strings, unset messages as `null`.

use std::io::Write;

use clap::ValueEnum;
use serde_json::{Value, json};

use super::time;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1::Notice;
use pb::acknowledgement::Outcome;

/// An instruction state, by the short name used on the command line and in output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateName {
    Pending,
    Delivered,
    Executed,
    Partial,
    Mismatch,
    AccountNotFound,
    Rejected,
}

impl StateName {
    pub fn to_proto(self) -> pb::InstructionState {
        match self {
            StateName::Pending => pb::InstructionState::Pending,
            StateName::Delivered => pb::InstructionState::Delivered,
            StateName::Executed => pb::InstructionState::Executed,
            StateName::Partial => pb::InstructionState::Partial,
            StateName::Mismatch => pb::InstructionState::Mismatch,
            StateName::AccountNotFound => pb::InstructionState::AccountNotFound,
            StateName::Rejected => pb::InstructionState::Rejected,
        }
    }
}

/// The short name of a state as the proto carries it (`unspecified` for unknown values).
pub fn state_name(v: i32) -> &'static str {
    match pb::InstructionState::try_from(v) {
        Ok(pb::InstructionState::Pending) => "pending",
        Ok(pb::InstructionState::Delivered) => "delivered",
        Ok(pb::InstructionState::Executed) => "executed",
        Ok(pb::InstructionState::Partial) => "partial",
        Ok(pb::InstructionState::Mismatch) => "mismatch",
        Ok(pb::InstructionState::AccountNotFound) => "account-not-found",
        Ok(pb::InstructionState::Rejected) => "rejected",
        Ok(pb::InstructionState::Overdue) => "overdue",
        Ok(pb::InstructionState::Queued) => "queued",
        Ok(pb::InstructionState::Lapsed) => "lapsed",
        Ok(pb::InstructionState::Released) => "released",
        Ok(pb::InstructionState::Unspecified) | Err(_) => "unspecified",
    }
}

fn action_name(v: i32) -> &'static str {
    match pb::Action::try_from(v) {
        Ok(pb::Action::StopPayment) => "stop-payment",
        Ok(pb::Action::Freeze) => "freeze",
        Ok(pb::Action::RenewFreeze) => "renew-freeze",
        Ok(pb::Action::ReleaseStop) => "release-stop",
        Ok(pb::Action::ReleaseFreeze) => "release-freeze",
        Ok(pb::Action::Unspecified) | Err(_) => "unspecified",
    }
}

fn kind_name(v: i32) -> &'static str {
    match pb::AccountKind::try_from(v) {
        Ok(pb::AccountKind::BankAccount) => "bank",
        Ok(pb::AccountKind::PaymentAccount) => "payment",
        Ok(pb::AccountKind::Unspecified) | Err(_) => "unspecified",
    }
}

/// The short name of a mismatched field, as `bank ack --mismatch` takes it.
pub fn mismatch_field_name(v: i32) -> &'static str {
    match pb::MismatchField::try_from(v) {
        Ok(pb::MismatchField::AccountName) => "name",
        Ok(pb::MismatchField::AccountNumber) => "number",
        Ok(pb::MismatchField::Amount) => "amount",
        Ok(pb::MismatchField::TransferTime) => "time",
        Ok(pb::MismatchField::Unspecified) | Err(_) => "unspecified",
    }
}

/// Writes lines to stdout; a closed pipe becomes an error (exit 1) instead of a panic.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `human()` or, with `--json`, the object `json()` on one line.
    pub fn emit(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> anyhow::Result<()> {
        let line = if self.json {
            json().to_string()
        } else {
            human()
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        Ok(())
    }
}

fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time::format(t)))
}

fn account_json(a: &pb::SuspectAccount) -> Value {
    json!({
        "institution_code": a.institution_code,
        "account_number": a.account_number,
        "account_name": a.account_name,
        "account_kind": kind_name(a.account_kind),
        "amount_fen": a.amount_fen,
    })
}

fn victim_json(v: &pb::VictimTransfer) -> Value {
    json!({
        "institution_code": v.institution_code,
        "account_number": v.account_number,
        "account_name": v.account_name,
        "currency": v.currency,
        "amount_fen": v.amount_fen,
        "transfer_time": ts(v.transfer_time.as_ref()),
        "transaction_reference": v.transaction_reference,
    })
}

/// An answer's outcome as JSON: `{"outcome": "executed", ...fields}`.
pub fn outcome_json(o: Option<&Outcome>) -> Value {
    match o {
        None => json!({ "outcome": null }),
        Some(Outcome::Executed(e)) => json!({
            "outcome": "executed",
            "amount_held_fen": e.amount_held_fen,
            "balance_fen": e.balance_fen,
            "executed_at": ts(e.executed_at.as_ref()),
        }),
        Some(Outcome::Partial(p)) => json!({
            "outcome": "partial",
            "amount_held_fen": p.amount_held_fen,
            "balance_fen": p.balance_fen,
            "executed_at": ts(p.executed_at.as_ref()),
        }),
        Some(Outcome::Frozen(f)) => json!({
            "outcome": "frozen",
            "amount_frozen_fen": f.amount_frozen_fen,
            "balance_fen": f.balance_fen,
            "available_balance_fen": f.available_balance_fen,
            "amount_not_frozen_fen": f.amount_not_frozen_fen,
            "not_frozen_reason": f.not_frozen_reason,
            "earlier_freezes": f.earlier_freezes.len(),
            "executed_at": ts(f.executed_at.as_ref()),
        }),
        Some(Outcome::Done(d)) => json!({
            "outcome": "done",
            "executed_at": ts(d.executed_at.as_ref()),
        }),
        Some(Outcome::Mismatch(m)) => json!({
            "outcome": "mismatch",
            "fields": m.fields.iter().map(|f| mismatch_field_name(*f)).collect::<Vec<_>>(),
            "detail": m.detail,
        }),
        Some(Outcome::AccountNotFound(n)) => {
            json!({ "outcome": "account-not-found", "detail": n.detail })
        }
        Some(Outcome::Rejected(r)) => json!({ "outcome": "rejected", "reason": r.reason }),
    }
}

fn ack_json(a: &pb::Acknowledgement) -> Value {
    let mut v = outcome_json(a.outcome.as_ref());
    v["received_at"] = ts(a.received_at.as_ref());
    v
}

/// One instruction as JSON.
pub fn instruction_json(i: &pb::Instruction) -> Value {
    json!({
        "instruction_id": i.instruction_id,
        "notice_id": i.notice_id,
        "case_reference": i.case_reference,
        "police_agency": i.police_agency,
        "action": action_name(i.action),
        "account": i.account.as_ref().map_or(Value::Null, account_json),
        "victim_transfer": i.victim_transfer.as_ref().map_or(Value::Null, victim_json),
        "state": state_name(i.state),
        "sequence": i.sequence,
        "created_at": ts(i.created_at.as_ref()),
        "answer_due_at": ts(i.answer_due_at.as_ref()),
        "delivered_at": ts(i.delivered_at.as_ref()),
        "acknowledgement": i.acknowledgement.as_ref().map_or(Value::Null, ack_json),
        "updated_at": ts(i.updated_at.as_ref()),
    })
}

/// One notice, with its instructions, as JSON.
pub fn notice_json(n: &Notice) -> Value {
    json!({
        "notice_id": n.notice_id,
        "request_id": n.request_id,
        "case_reference": n.case_reference,
        "police_agency": n.police_agency,
        "action": action_name(n.action),
        "victim_transfer": n.victim_transfer.as_ref().map_or(Value::Null, victim_json),
        "instructions": n.instructions.iter().map(instruction_json).collect::<Vec<_>>(),
    })
}

/// A short human summary of an answer: `held 5000 fen, balance 0 fen`, the mismatched
/// fields, the detail or the reason.
pub fn outcome_summary(o: Option<&Outcome>) -> String {
    match o {
        None => String::new(),
        Some(Outcome::Executed(e)) => format!(
            "held {} fen, balance {} fen",
            e.amount_held_fen, e.balance_fen
        ),
        Some(Outcome::Partial(p)) => format!(
            "held {} fen, balance {} fen",
            p.amount_held_fen, p.balance_fen
        ),
        Some(Outcome::Mismatch(m)) => {
            let fields: Vec<_> = m.fields.iter().map(|f| mismatch_field_name(*f)).collect();
            with_detail(format!("fields {}", fields.join(",")), &m.detail)
        }
        Some(Outcome::AccountNotFound(n)) => with_detail(String::new(), &n.detail),
        Some(Outcome::Rejected(r)) => format!("reason: {}", r.reason),
        Some(Outcome::Frozen(f)) => format!(
            "frozen {} fen, balance {} fen, available {} fen{}",
            f.amount_frozen_fen,
            f.balance_fen,
            f.available_balance_fen,
            if f.earlier_freezes.is_empty() {
                String::new()
            } else {
                format!(
                    ", queued behind {} earlier freeze(s)",
                    f.earlier_freezes.len()
                )
            }
        ),
        Some(Outcome::Done(_)) => "done".to_owned(),
    }
}

fn with_detail(head: String, detail: &str) -> String {
    match (head.is_empty(), detail.is_empty()) {
        (_, true) => head,
        (true, false) => format!("detail: {detail}"),
        (false, false) => format!("{head}; detail: {detail}"),
    }
}

/// One aligned line: id, state, institution, account, amount, then the answer if any.
pub fn instruction_line(i: &pb::Instruction) -> String {
    let (inst, number, amount) = i.account.as_ref().map_or(("?", "?", 0), |a| {
        (
            a.institution_code.as_str(),
            a.account_number.as_str(),
            a.amount_fen,
        )
    });
    let answer = outcome_summary(i.acknowledgement.as_ref().and_then(|a| a.outcome.as_ref()));
    let line = format!(
        "{:<14} {:<17} {:<8} {:<20} {:>12} fen  {answer}",
        i.instruction_id,
        state_name(i.state),
        inst,
        number,
        amount
    );
    line.trim_end().to_owned()
}

/// A multi-line view of one instruction, `label  value` per line.
pub fn instruction_detail(i: &pb::Instruction) -> String {
    let mut rows = vec![
        ("instruction", i.instruction_id.clone()),
        ("notice", i.notice_id.clone()),
        ("case", i.case_reference.clone()),
        ("police agency", i.police_agency.clone()),
        ("action", action_name(i.action).to_owned()),
        ("state", state_name(i.state).to_owned()),
    ];
    if let Some(a) = &i.account {
        rows.push(("institution", a.institution_code.clone()));
        let kind = kind_name(a.account_kind);
        rows.push((
            "account",
            format!("{} ({}, {kind} account)", a.account_number, a.account_name),
        ));
        rows.push(("amount", format!("{} fen", a.amount_fen)));
    }
    if let Some(v) = &i.victim_transfer {
        rows.push(("victim", victim_line(v)));
    }
    rows.push(("sequence", i.sequence.to_string()));
    rows.push(("created", time::format_opt(i.created_at.as_ref())));
    rows.push(("answer due", time::format_opt(i.answer_due_at.as_ref())));
    rows.push(("delivered", time::format_opt(i.delivered_at.as_ref())));
    if let Some(a) = &i.acknowledgement {
        rows.push(("answer", answer_line(a)));
    }
    rows.push(("updated", time::format_opt(i.updated_at.as_ref())));
    rows.iter()
        .map(|(label, value)| format!("{label:<14} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn victim_line(v: &pb::VictimTransfer) -> String {
    format!(
        "{} {} ({}), {} fen {} at {}, ref {}",
        v.institution_code,
        v.account_number,
        v.account_name,
        v.amount_fen,
        v.currency,
        time::format_opt(v.transfer_time.as_ref()),
        v.transaction_reference
    )
}

fn answer_line(a: &pb::Acknowledgement) -> String {
    let outcome = a.outcome.as_ref();
    let name = outcome_json(outcome)["outcome"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    let executed_at = match outcome {
        Some(Outcome::Executed(e)) => e.executed_at.as_ref(),
        Some(Outcome::Partial(p)) => p.executed_at.as_ref(),
        _ => None,
    };
    let mut line = name;
    let summary = outcome_summary(outcome);
    if !summary.is_empty() {
        line = format!("{line}: {summary}");
    }
    if let Some(at) = executed_at {
        line = format!("{line}, executed at {}", time::format(at));
    }
    format!(
        "{line}; received {}",
        time::format_opt(a.received_at.as_ref())
    )
}

/// The header line of a notice followed by one line per instruction.
pub fn notice_lines(n: &Notice) -> String {
    let mut lines = vec![format!(
        "notice {}  request {}  case {}  agency {}",
        n.notice_id, n.request_id, n.case_reference, n.police_agency
    )];
    if let Some(v) = &n.victim_transfer {
        lines.push(format!("  victim {}", victim_line(v)));
    }
    lines.extend(
        n.instructions
            .iter()
            .map(|i| format!("  {}", instruction_line(i))),
    );
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in StateName::value_variants() {
            let cli = s.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(cli.as_deref(), Some(state_name(s.to_proto() as i32)));
        }
        assert_eq!(
            StateName::from_str("account-not-found", false),
            Ok(StateName::AccountNotFound)
        );
        assert!(StateName::from_str("done", false).is_err());
        assert_eq!(state_name(99), "unspecified");
    }

    #[test]
    fn instruction_json_uses_short_names_and_rfc3339() {
        let i = pb::Instruction {
            instruction_id: "I1".into(),
            state: pb::InstructionState::Executed as i32,
            action: pb::Action::StopPayment as i32,
            created_at: Some(time::from_millis(0)),
            acknowledgement: Some(pb::Acknowledgement {
                outcome: Some(Outcome::Mismatch(pb::Mismatch {
                    fields: vec![
                        pb::MismatchField::AccountName as i32,
                        pb::MismatchField::Amount as i32,
                    ],
                    detail: String::new(),
                })),
                received_at: None,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = instruction_json(&i);
        assert_eq!(v["state"], "executed");
        assert_eq!(v["action"], "stop-payment");
        assert_eq!(v["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(v["delivered_at"], Value::Null);
        assert_eq!(v["acknowledgement"]["outcome"], "mismatch");
        assert_eq!(v["acknowledgement"]["fields"], json!(["name", "amount"]));
        assert!(instruction_line(&i).contains("fields name,amount"));
    }
}
