//! How the CLI shows hub records: short human lines by default, or one JSON object per line
//! with `--json`. Prost types do not implement `Serialize`, so the JSON is built here by hand:
//! field names as in the proto, enums by their short CLI names (`executed`,
//! `account-not-found`, `stop-payment`, `bank`), amounts as integers in fen, instants as
//! RFC 3339 UTC strings, unset messages as `null`.

use std::io::Write;

use clap::ValueEnum;
use serde_json::{Value, json};

use super::time;
use crate::proto::stophub::bank::v1::CheckResult;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::oversight::v1::{Appeal, AppealState};
use crate::proto::stophub::police::v1::Notice;
use pb::acknowledgement::Outcome;

mod blacklist;
mod names;
#[cfg(test)]
mod tests;

pub use blacklist::*;
pub use names::*;

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

/// An optional id: `null` when empty.
fn id_or_null(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

fn account_json(a: &pb::SuspectAccount) -> Value {
    json!({
        "institution_code": a.institution_code,
        "account_number": a.account_number,
        "account_name": a.account_name,
        "account_kind": kind_name(a.account_kind),
        "amount_fen": a.amount_fen,
        "follows_instruction_id": id_or_null(&a.follows_instruction_id),
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

/// One onward transfer as JSON.
pub fn onward_json(t: &pb::OnwardTransfer) -> Value {
    json!({
        "institution_code": t.institution_code,
        "account_number": t.account_number,
        "account_name": t.account_name,
        "amount_fen": t.amount_fen,
        "time": ts(t.time.as_ref()),
        "transaction_reference": t.transaction_reference,
    })
}

fn onward_list_json(list: &[pb::OnwardTransfer]) -> Value {
    Value::Array(list.iter().map(onward_json).collect())
}

fn hop_json(h: &pb::Hop) -> Value {
    json!({
        "transfer": h.transfer.as_ref().map_or(Value::Null, onward_json),
        "result": hop_result_name(h.result),
        "child_instruction_id": id_or_null(&h.child_instruction_id),
        "followed_amount_fen": h.followed_amount_fen,
    })
}

fn earlier_json(e: &pb::EarlierFreeze) -> Value {
    json!({
        "authority": e.authority,
        "amount_fen": e.amount_fen,
        "expires_at": ts(e.expires_at.as_ref()),
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
            "onward_transfers": onward_list_json(&e.onward_transfers),
        }),
        Some(Outcome::Partial(p)) => json!({
            "outcome": "partial",
            "amount_held_fen": p.amount_held_fen,
            "balance_fen": p.balance_fen,
            "executed_at": ts(p.executed_at.as_ref()),
            "onward_transfers": onward_list_json(&p.onward_transfers),
        }),
        Some(Outcome::Frozen(f)) => json!({
            "outcome": "frozen",
            "amount_frozen_fen": f.amount_frozen_fen,
            "balance_fen": f.balance_fen,
            "available_balance_fen": f.available_balance_fen,
            "amount_not_frozen_fen": f.amount_not_frozen_fen,
            "not_frozen_reason": f.not_frozen_reason,
            "earlier_freezes": f.earlier_freezes.iter().map(earlier_json).collect::<Vec<_>>(),
            "executed_at": ts(f.executed_at.as_ref()),
            "onward_transfers": onward_list_json(&f.onward_transfers),
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
    v["late_by_ms"] = json!(a.late_by_ms);
    v["execution_time_discrepancy_ms"] = json!(a.execution_time_discrepancy_ms);
    v
}

fn freeze_json(f: &pb::FreezeTerms) -> Value {
    json!({
        "mode": freeze_mode_name(f.mode),
        "major_case_approval": f.major_case_approval.as_ref().map_or(Value::Null, |m| json!({
            "approval_reference": m.approval_reference,
            "approved_by": m.approved_by,
        })),
    })
}

fn filing_json(c: &pb::CaseFiling) -> Value {
    json!({ "case_number": c.case_number, "filed_at": ts(c.filed_at.as_ref()) })
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
        "references_instruction_id": id_or_null(&i.references_instruction_id),
        "parent_instruction_id": id_or_null(&i.parent_instruction_id),
        "depth": i.depth,
        "freeze": i.freeze.as_ref().map_or(Value::Null, freeze_json),
        "case_filing": i.case_filing.as_ref().map_or(Value::Null, filing_json),
        "effective_until": ts(i.effective_until.as_ref()),
        "overdue_at": ts(i.overdue_at.as_ref()),
        "renew_until": ts(i.renew_until.as_ref()),
        "hops": i.hops.iter().map(hop_json).collect::<Vec<_>>(),
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

/// A case's fund-flow graph as JSON.
pub fn graph_json(g: &pb::CaseGraph) -> Value {
    let accounts: Vec<Value> = g
        .accounts
        .iter()
        .map(|a| {
            json!({
                "institution_code": a.institution_code,
                "account_number": a.account_number,
                "account_name": a.account_name,
                "depth": a.depth,
                "requested_fen": a.requested_fen,
                "held_fen": a.held_fen,
                "instruction_ids": a.instruction_ids,
            })
        })
        .collect();
    let transfers: Vec<Value> = g
        .transfers
        .iter()
        .map(|t| {
            json!({
                "from_institution_code": t.from_institution_code,
                "from_account_number": t.from_account_number,
                "from_instruction_id": t.from_instruction_id,
                "hop": t.hop.as_ref().map_or(Value::Null, hop_json),
            })
        })
        .collect();
    json!({
        "police_agency": g.police_agency,
        "case_reference": g.case_reference,
        "accounts": accounts,
        "transfers": transfers,
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
        Some(Outcome::Frozen(f)) => {
            let mut s = format!(
                "frozen {} fen, balance {} fen, available {} fen",
                f.amount_frozen_fen, f.balance_fen, f.available_balance_fen
            );
            if f.amount_not_frozen_fen > 0 {
                s.push_str(&format!(
                    ", not frozen {} fen ({})",
                    f.amount_not_frozen_fen, f.not_frozen_reason
                ));
            }
            if !f.earlier_freezes.is_empty() {
                let who: Vec<String> = f
                    .earlier_freezes
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} fen until {}",
                            e.authority,
                            e.amount_fen,
                            time::format_opt(e.expires_at.as_ref())
                        )
                    })
                    .collect();
                s.push_str(&format!(", queued behind {}", who.join(", ")));
            }
            s
        }
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

/// A duration in milliseconds, roughly, for people: `850 ms`, `42 s`, `3 min`, `5 h`, `12 d`.
pub fn duration(ms: i64) -> String {
    let abs = ms.unsigned_abs();
    let sign = if ms < 0 { "-" } else { "" };
    let text = match abs {
        0..1_000 => format!("{abs} ms"),
        1_000..120_000 => format!("{} s", abs / 1_000),
        120_000..7_200_000 => format!("{} min", abs / 60_000),
        7_200_000..172_800_000 => format!("{} h", abs / 3_600_000),
        _ => format!("{} d", abs / 86_400_000),
    };
    format!("{sign}{text}")
}

/// The lifecycle notes of an instruction that are set: links, term, lateness.
fn notes(i: &pb::Instruction) -> Vec<String> {
    let mut notes = Vec::new();
    if !i.parent_instruction_id.is_empty() {
        notes.push(format!(
            "depth {} from {}",
            i.depth, i.parent_instruction_id
        ));
    }
    if !i.references_instruction_id.is_empty() {
        let verb = match pb::Action::try_from(i.action) {
            Ok(pb::Action::Freeze) => "follows",
            Ok(pb::Action::RenewFreeze) => "renews",
            Ok(pb::Action::ReleaseStop | pb::Action::ReleaseFreeze) => "releases",
            _ => "refers to",
        };
        notes.push(format!("{verb} {}", i.references_instruction_id));
    }
    if let Some(f) = &i.freeze {
        let mut s = format!("mode {}", freeze_mode_name(f.mode));
        if let Some(m) = &f.major_case_approval {
            s.push_str(&format!(
                ", major case {} by {}",
                m.approval_reference, m.approved_by
            ));
        }
        notes.push(s);
    }
    if let Some(t) = &i.renew_until {
        notes.push(format!("renew to {}", time::format(t)));
    }
    // The term: while in force, when it ends; once lapsed, when it did (a released stop or
    // freeze keeps its old expiry, which no longer means anything).
    match (pb::InstructionState::try_from(i.state), &i.effective_until) {
        (Ok(pb::InstructionState::Lapsed), Some(t)) => {
            notes.push(format!("lapsed at {}", time::format(t)));
        }
        (Ok(pb::InstructionState::Released), _) | (_, None) => {}
        (_, Some(t)) => notes.push(format!("until {}", time::format(t))),
    }
    if let Some(t) = &i.overdue_at {
        notes.push(format!("overdue since {}", time::format(t)));
    }
    if let Some(a) = &i.acknowledgement {
        if a.late_by_ms > 0 {
            notes.push(format!("answered late by {}", duration(a.late_by_ms)));
        }
        if a.execution_time_discrepancy_ms != 0 {
            notes.push(format!(
                "reported execution time off by {}; hub time used",
                duration(a.execution_time_discrepancy_ms)
            ));
        }
    }
    notes
}

/// One aligned line: id, state, action, institution, account, amount, then the answer and
/// the lifecycle notes (`[until ...; overdue since ...]`) if any.
pub fn instruction_line(i: &pb::Instruction) -> String {
    let (inst, number, amount) = i.account.as_ref().map_or(("?", "?", 0), |a| {
        (
            a.institution_code.as_str(),
            a.account_number.as_str(),
            a.amount_fen,
        )
    });
    let answer = outcome_summary(i.acknowledgement.as_ref().and_then(|a| a.outcome.as_ref()));
    let notes = notes(i);
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("[{}]", notes.join("; "))
    };
    // Two spaces between the parts that are there, none for those that are not.
    let tail = [answer, notes]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("  ");
    let line = format!(
        "{:<14} {:<17} {:<14} {:<8} {:<20} {:>12} fen  {tail}",
        i.instruction_id,
        state_name(i.state),
        action_name(i.action),
        inst,
        number,
        amount
    );
    line.trim_end().to_owned()
}

/// One onward transfer, for people: `-> CCB 6217000000009999 (Next Holder) 250000 fen at T ref R`.
pub fn transfer_text(t: &pb::OnwardTransfer) -> String {
    format!(
        "-> {} {} ({}) {} fen at {} ref {}",
        t.institution_code,
        t.account_number,
        t.account_name,
        t.amount_fen,
        time::format_opt(t.time.as_ref()),
        t.transaction_reference
    )
}

/// What the hub did with one onward transfer, for people.
pub fn hop_text(h: &pb::Hop) -> String {
    let transfer = h
        .transfer
        .as_ref()
        .map_or_else(|| "-> ?".to_owned(), transfer_text);
    let result = hop_result_name(h.result);
    let outcome = match pb::HopResult::try_from(h.result) {
        Ok(pb::HopResult::Followed) => format!(
            "{result}: {} asks {} fen",
            h.child_instruction_id, h.followed_amount_fen
        ),
        Ok(pb::HopResult::Cycle) if !h.child_instruction_id.is_empty() => {
            format!("{result}: already held by {}", h.child_instruction_id)
        }
        _ => result.to_owned(),
    };
    format!("{transfer}  {outcome}")
}

/// The instruction's hops, one line each (`hop ...`), for under its line.
pub fn hop_lines(i: &pb::Instruction) -> Vec<String> {
    i.hops
        .iter()
        .map(|h| format!("hop {}", hop_text(h)))
        .collect()
}

/// `instruction_line` followed by its hops, each indented by `indent` more spaces.
pub fn instruction_with_hops(i: &pb::Instruction, indent: usize) -> String {
    let mut lines = vec![instruction_line(i)];
    lines.extend(
        hop_lines(i)
            .into_iter()
            .map(|h| format!("{:indent$}{h}", "")),
    );
    lines.join("\n")
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
    rows.push(("depth", i.depth.to_string()));
    if !i.parent_instruction_id.is_empty() {
        rows.push(("parent", i.parent_instruction_id.clone()));
    }
    if !i.references_instruction_id.is_empty() {
        rows.push(("references", i.references_instruction_id.clone()));
    }
    if let Some(c) = &i.case_filing {
        rows.push((
            "case filing",
            format!(
                "{} filed {}",
                c.case_number,
                time::format_opt(c.filed_at.as_ref())
            ),
        ));
    }
    if let Some(f) = &i.freeze {
        let major = f
            .major_case_approval
            .as_ref()
            .map_or_else(String::new, |m| {
                format!(
                    ", major case {} approved by {}",
                    m.approval_reference, m.approved_by
                )
            });
        rows.push(("freeze", format!("{}{major}", freeze_mode_name(f.mode))));
    }
    rows.push(("sequence", i.sequence.to_string()));
    rows.push(("created", time::format_opt(i.created_at.as_ref())));
    rows.push(("answer due", time::format_opt(i.answer_due_at.as_ref())));
    rows.push(("delivered", time::format_opt(i.delivered_at.as_ref())));
    if let Some(t) = &i.overdue_at {
        rows.push(("overdue at", time::format(t)));
    }
    if let Some(a) = &i.acknowledgement {
        rows.push(("answer", answer_line(a)));
    }
    if let Some(t) = &i.renew_until {
        rows.push(("renew until", time::format(t)));
    }
    if let Some(t) = &i.effective_until {
        rows.push(("in force until", time::format(t)));
    }
    rows.extend(i.hops.iter().map(|h| ("hop", hop_text(h))));
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
        Some(Outcome::Frozen(f)) => f.executed_at.as_ref(),
        Some(Outcome::Done(d)) => d.executed_at.as_ref(),
        _ => None,
    };
    let mut line = name;
    let summary = outcome_summary(outcome);
    if !summary.is_empty() && summary != line {
        line = format!("{line}: {summary}");
    }
    if let Some(at) = executed_at {
        line = format!("{line}, executed at {}", time::format(at));
    }
    let mut line = format!(
        "{line}; received {}",
        time::format_opt(a.received_at.as_ref())
    );
    if a.late_by_ms > 0 {
        line.push_str(&format!(", late by {}", duration(a.late_by_ms)));
    }
    line
}

/// The header line of a notice followed by one line per instruction (and its hops).
pub fn notice_lines(n: &Notice) -> String {
    let mut lines = vec![format!(
        "notice {}  request {}  case {}  agency {}  action {}",
        n.notice_id,
        n.request_id,
        n.case_reference,
        n.police_agency,
        action_name(n.action)
    )];
    if let Some(v) = &n.victim_transfer {
        lines.push(format!("  victim {}", victim_line(v)));
    }
    lines.extend(
        n.instructions
            .iter()
            .map(|i| format!("  {}", instruction_with_hops(i, 4))),
    );
    lines.join("\n")
}

/// A case's fund-flow graph for people: its accounts (shallowest first), then the transfers
/// between them and what the hub did with each.
pub fn graph_lines(g: &pb::CaseGraph) -> String {
    let mut lines = vec![
        format!(
            "case {}  agency {}  {} account(s), {} transfer(s)",
            g.case_reference,
            g.police_agency,
            g.accounts.len(),
            g.transfers.len()
        ),
        "accounts:".to_owned(),
        format!(
            "  {:<5} {:<8} {:<20} {:<16} {:>12} {:>12}  instructions",
            "depth", "inst", "account", "name", "requested", "held"
        ),
    ];
    lines.extend(g.accounts.iter().map(|a| {
        format!(
            "  {:<5} {:<8} {:<20} {:<16} {:>12} {:>12}  {}",
            a.depth,
            a.institution_code,
            a.account_number,
            a.account_name,
            a.requested_fen,
            a.held_fen,
            a.instruction_ids.join(",")
        )
    }));
    lines.push("transfers:".to_owned());
    if g.transfers.is_empty() {
        lines.push("  (none reported)".to_owned());
    }
    lines.extend(g.transfers.iter().map(|t| {
        let hop = t.hop.as_ref().map_or_else(|| "-> ?".to_owned(), hop_text);
        format!(
            "  {} {} {hop}  (reported with {})",
            t.from_institution_code, t.from_account_number, t.from_instruction_id
        )
    }));
    lines.join("\n")
}
