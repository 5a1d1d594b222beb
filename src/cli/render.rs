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
    Overdue,
    Queued,
    Lapsed,
    Released,
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
            StateName::Overdue => pb::InstructionState::Overdue,
            StateName::Queued => pb::InstructionState::Queued,
            StateName::Lapsed => pb::InstructionState::Lapsed,
            StateName::Released => pb::InstructionState::Released,
        }
    }
}

/// What police ask of every suspect account, as `--action` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionName {
    /// Emergency stop-payment (紧急止付).
    Stop,
    /// Freeze (冻结); needs a filed case.
    Freeze,
}

impl ActionName {
    pub fn to_proto(self) -> pb::Action {
        match self {
            ActionName::Stop => pb::Action::StopPayment,
            ActionName::Freeze => pb::Action::Freeze,
        }
    }
}

/// An identity document type, by the short name `--doc-type` takes and output uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum DocTypeName {
    /// 18-character resident identity card number (居民身份证), with its check character.
    ResidentId,
    /// Passport number: 5-20 of A-Z and 0-9.
    Passport,
    /// 18-character unified social credit code of a unit (统一社会信用代码).
    Uscc,
}

impl DocTypeName {
    pub fn to_proto(self) -> pb::DocumentType {
        match self {
            DocTypeName::ResidentId => pb::DocumentType::ResidentId,
            DocTypeName::Passport => pb::DocumentType::Passport,
            DocTypeName::Uscc => pb::DocumentType::UnifiedSocialCreditCode,
        }
    }

    /// The name of a proto value, `None` for unspecified or unknown values.
    pub fn from_proto(v: i32) -> Option<Self> {
        match pb::DocumentType::try_from(v) {
            Ok(pb::DocumentType::ResidentId) => Some(DocTypeName::ResidentId),
            Ok(pb::DocumentType::Passport) => Some(DocTypeName::Passport),
            Ok(pb::DocumentType::UnifiedSocialCreditCode) => Some(DocTypeName::Uscc),
            Ok(pb::DocumentType::Unspecified) | Err(_) => None,
        }
    }

    /// Parses a short name, ignoring case: `resident-id`, `passport` or `uscc`.
    pub fn parse(s: &str) -> Result<Self, String> {
        <Self as ValueEnum>::from_str(s.trim(), true).map_err(|_| {
            format!("{s:?}: not a document type; expected resident-id, passport or uscc")
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DocTypeName::ResidentId => "resident-id",
            DocTypeName::Passport => "passport",
            DocTypeName::Uscc => "uscc",
        }
    }
}

/// The short name of a document type as the proto carries it (`unspecified` for unknown
/// values).
pub fn doc_type_name(v: i32) -> &'static str {
    DocTypeName::from_proto(v).map_or("unspecified", DocTypeName::name)
}

/// The short name of a blacklist entry's state.
pub fn listing_state_name(v: i32) -> &'static str {
    match pb::ListingState::try_from(v) {
        Ok(pb::ListingState::Listed) => "listed",
        Ok(pb::ListingState::Delisted) => "delisted",
        Ok(pb::ListingState::Lapsed) => "lapsed",
        Ok(pb::ListingState::AppealUpheld) => "appeal-upheld",
        Ok(pb::ListingState::Unspecified) | Err(_) => "unspecified",
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

pub fn action_name(v: i32) -> &'static str {
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

fn freeze_mode_name(v: i32) -> &'static str {
    match pb::FreezeMode::try_from(v) {
        Ok(pb::FreezeMode::AmountLimited) => "amount",
        Ok(pb::FreezeMode::ReceiveOnly) => "receive-only",
        Ok(pb::FreezeMode::Unspecified) | Err(_) => "unspecified",
    }
}

/// What the hub did with an onward transfer, by short name.
pub fn hop_result_name(v: i32) -> &'static str {
    match pb::HopResult::try_from(v) {
        Ok(pb::HopResult::Followed) => "followed",
        Ok(pb::HopResult::Unreachable) => "unreachable",
        Ok(pb::HopResult::Cycle) => "cycle",
        Ok(pb::HopResult::DepthLimit) => "depth-limit",
        Ok(pb::HopResult::NothingLeft) => "nothing-left",
        Ok(pb::HopResult::NotRequested) => "not-requested",
        Ok(pb::HopResult::StopLimit) => "stop-limit",
        Ok(pb::HopResult::Unspecified) | Err(_) => "unspecified",
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

/// A subject as JSON: `{"document_type": "resident-id", "document_number": "..."}`.
pub fn subject_json(s: Option<&pb::SubjectRef>) -> Value {
    s.map_or(Value::Null, |s| {
        json!({
            "document_type": doc_type_name(s.document_type),
            "document_number": s.document_number,
        })
    })
}

/// A subject for people: `resident-id 11010519491231002X`.
pub fn subject_text(s: Option<&pb::SubjectRef>) -> String {
    s.map_or_else(
        || "? ?".to_owned(),
        |s| format!("{} {}", doc_type_name(s.document_type), s.document_number),
    )
}

/// A listing's effects as JSON, field names as in the proto.
pub fn effects_json(e: Option<&pb::Effects>) -> Value {
    e.map_or(Value::Null, |e| {
        json!({
            "bank_non_counter_suspended": e.bank_non_counter_suspended,
            "payment_accounts_suspended": e.payment_accounts_suspended,
            "no_new_accounts": e.no_new_accounts,
        })
    })
}

/// What a listing bars, for people: `non-counter suspended, payment accounts suspended, no
/// new accounts`, or `none`.
pub fn effects_text(e: Option<&pb::Effects>) -> String {
    let e = e.copied().unwrap_or_default();
    let barred: Vec<&str> = [
        (e.bank_non_counter_suspended, "non-counter suspended"),
        (e.payment_accounts_suspended, "payment accounts suspended"),
        (e.no_new_accounts, "no new accounts"),
    ]
    .into_iter()
    .filter_map(|(on, text)| on.then_some(text))
    .collect();
    if barred.is_empty() {
        "none".to_owned()
    } else {
        barred.join(", ")
    }
}

/// A blacklist entry as JSON, unmasked (police and oversight see it whole).
pub fn entry_json(e: &pb::BlacklistEntry) -> Value {
    json!({
        "subject": subject_json(e.subject.as_ref()),
        "subject_name": id_or_null(&e.subject_name),
        "state": listing_state_name(e.state),
        "legal_basis": e.legal_basis,
        "basis_table_version": e.basis_table_version,
        "effects": effects_json(e.effects.as_ref()),
        "listed_by": e.listed_by,
        "case_reference": e.case_reference,
        "listed_at": ts(e.listed_at.as_ref()),
        "consecutive_since": ts(e.consecutive_since.as_ref()),
        "expires_at": ts(e.expires_at.as_ref()),
        "version": e.version,
        "removal_reason": id_or_null(&e.removal_reason),
    })
}

/// `label  value` rows, aligned.
fn rows_text(rows: &[(&str, String)]) -> String {
    rows.iter()
        .map(|(label, value)| format!("{label:<18} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rows of a blacklist entry, for people.
fn entry_rows(e: &pb::BlacklistEntry) -> Vec<(&'static str, String)> {
    let mut subject = subject_text(e.subject.as_ref());
    if !e.subject_name.is_empty() {
        subject.push_str(&format!(" ({})", e.subject_name));
    }
    let mut rows = vec![
        ("subject", subject),
        ("state", listing_state_name(e.state).to_owned()),
        (
            "legal basis",
            format!("{} (basis table {})", e.legal_basis, e.basis_table_version),
        ),
        ("effects", effects_text(e.effects.as_ref())),
        (
            "listed by",
            format!("{}, case {}", e.listed_by, e.case_reference),
        ),
        ("listed at", time::format_opt(e.listed_at.as_ref())),
        (
            "consecutive since",
            time::format_opt(e.consecutive_since.as_ref()),
        ),
        ("expires at", time::format_opt(e.expires_at.as_ref())),
        ("version", e.version.to_string()),
    ];
    if !e.removal_reason.is_empty() {
        rows.push(("removal reason", e.removal_reason.clone()));
    }
    rows
}

/// A multi-line view of a blacklist entry, `label  value` per line.
pub fn entry_detail(e: &pb::BlacklistEntry) -> String {
    rows_text(&entry_rows(e))
}

/// The short name of an appeal's state.
pub fn appeal_state_name(v: i32) -> &'static str {
    match AppealState::try_from(v) {
        Ok(AppealState::Pending) => "pending",
        Ok(AppealState::Upheld) => "upheld",
        Ok(AppealState::Dismissed) => "dismissed",
        Ok(AppealState::Unspecified) | Err(_) => "unspecified",
    }
}

/// An appeal as JSON.
pub fn appeal_json(a: &Appeal) -> Value {
    json!({
        "appeal_id": a.appeal_id,
        "subject": subject_json(a.subject.as_ref()),
        "grounds": a.grounds,
        "state": appeal_state_name(a.state),
        "decision_reason": id_or_null(&a.decision_reason),
        "recorded_by": a.recorded_by,
        "recorded_at": ts(a.recorded_at.as_ref()),
        "decided_by": id_or_null(&a.decided_by),
        "decided_at": ts(a.decided_at.as_ref()),
    })
}

/// A multi-line view of an appeal, `label  value` per line.
pub fn appeal_detail(a: &Appeal) -> String {
    let mut rows = vec![
        ("appeal", a.appeal_id.clone()),
        ("subject", subject_text(a.subject.as_ref())),
        ("state", appeal_state_name(a.state).to_owned()),
        ("grounds", a.grounds.clone()),
        (
            "recorded",
            format!(
                "{} by {}",
                time::format_opt(a.recorded_at.as_ref()),
                a.recorded_by
            ),
        ),
    ];
    if !a.decided_by.is_empty() || a.decided_at.is_some() {
        rows.push((
            "decided",
            format!(
                "{} by {}",
                time::format_opt(a.decided_at.as_ref()),
                a.decided_by
            ),
        ));
    }
    if !a.decision_reason.is_empty() {
        rows.push(("decision reason", a.decision_reason.clone()));
    }
    rows_text(&rows)
}

/// One screening answer for people: `resident-id 11010519491231002X  listed until T  effects:
/// ...` or `resident-id 11010519491231002X  not listed`.
pub fn check_line(r: &CheckResult) -> String {
    let subject = subject_text(r.subject.as_ref());
    if r.listed {
        format!(
            "{subject}  listed until {}  effects: {}",
            time::format_opt(r.listed_until.as_ref()),
            effects_text(r.effects.as_ref())
        )
    } else {
        format!("{subject}  not listed")
    }
}

/// One screening answer as JSON: `{"subject": {...}, "listed": true, "effects": {...},
/// "listed_until": "..."}` (`effects` and `listed_until` are `null` when not listed).
pub fn check_json(r: &CheckResult) -> Value {
    let (effects, until) = if r.listed {
        (
            effects_json(r.effects.as_ref()),
            ts(r.listed_until.as_ref()),
        )
    } else {
        (Value::Null, Value::Null)
    };
    json!({
        "subject": subject_json(r.subject.as_ref()),
        "listed": r.listed,
        "effects": effects,
        "listed_until": until,
    })
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
    fn document_types_parse_into_the_proto_enum() {
        for (name, proto) in [
            ("resident-id", pb::DocumentType::ResidentId),
            ("passport", pb::DocumentType::Passport),
            ("uscc", pb::DocumentType::UnifiedSocialCreditCode),
            ("USCC", pb::DocumentType::UnifiedSocialCreditCode),
            (" Resident-ID ", pb::DocumentType::ResidentId),
        ] {
            let parsed = DocTypeName::parse(name).unwrap();
            assert_eq!(parsed.to_proto(), proto, "{name}");
            assert_eq!(DocTypeName::from_proto(proto as i32), Some(parsed));
            assert_eq!(doc_type_name(proto as i32), name.trim().to_lowercase());
        }
        for bad in ["", "id", "resident_id", "usc", "unified-social-credit-code"] {
            let err = DocTypeName::parse(bad).unwrap_err();
            assert!(
                err.contains("resident-id, passport or uscc"),
                "{bad}: {err}"
            );
        }
        // The command line names are the output names.
        for d in DocTypeName::value_variants() {
            let cli = d.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(cli.as_deref(), Some(d.name()));
        }
        assert_eq!(DocTypeName::from_proto(0), None);
        assert_eq!(doc_type_name(7), "unspecified");
    }

    #[test]
    fn blacklist_entries_show_everything() {
        let e = pb::BlacklistEntry {
            subject: Some(pb::SubjectRef {
                document_type: pb::DocumentType::ResidentId as i32,
                document_number: "11010519491231002X".into(),
            }),
            subject_name: "Zhang San".into(),
            state: pb::ListingState::Listed as i32,
            legal_basis: "B5".into(),
            basis_table_version: "2024-1".into(),
            effects: Some(pb::Effects {
                bank_non_counter_suspended: true,
                payment_accounts_suspended: false,
                no_new_accounts: true,
            }),
            listed_by: "PSB-SZ".into(),
            case_reference: "SZ-1".into(),
            listed_at: Some(time::from_millis(0)),
            consecutive_since: Some(time::from_millis(0)),
            expires_at: Some(time::from_millis(86_400_000)),
            version: 3,
            removal_reason: String::new(),
        };
        let text = entry_detail(&e);
        for needle in [
            "subject            resident-id 11010519491231002X (Zhang San)",
            "state              listed",
            "legal basis        B5 (basis table 2024-1)",
            "effects            non-counter suspended, no new accounts",
            "listed by          PSB-SZ, case SZ-1",
            "consecutive since  1970-01-01T00:00:00Z",
            "expires at         1970-01-02T00:00:00Z",
            "version            3",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
        assert!(!text.contains("removal reason"));
        let v = entry_json(&e);
        assert_eq!(v["subject"]["document_type"], "resident-id");
        assert_eq!(v["state"], "listed");
        assert_eq!(v["effects"]["payment_accounts_suspended"], false);
        assert_eq!(v["expires_at"], "1970-01-02T00:00:00Z");
        assert_eq!(v["removal_reason"], Value::Null);
        let delisted = pb::BlacklistEntry {
            state: pb::ListingState::AppealUpheld as i32,
            removal_reason: "identity stolen".into(),
            ..e
        };
        assert!(entry_detail(&delisted).contains("removal reason     identity stolen"));
        assert_eq!(entry_json(&delisted)["state"], "appeal-upheld");
        assert_eq!(effects_text(None), "none");
        assert_eq!(effects_text(Some(&pb::Effects::default())), "none");
    }

    #[test]
    fn appeals_show_the_decision_once_made() {
        let mut a = Appeal {
            appeal_id: "A1".into(),
            grounds: "stolen card".into(),
            state: AppealState::Pending as i32,
            recorded_by: "PBOC".into(),
            recorded_at: Some(time::from_millis(0)),
            ..Default::default()
        };
        assert!(!appeal_detail(&a).contains("decided"));
        assert_eq!(appeal_json(&a)["decided_at"], Value::Null);
        a.state = AppealState::Dismissed as i32;
        a.decided_by = "PBOC".into();
        a.decision_reason = "no evidence".into();
        let text = appeal_detail(&a);
        assert!(text.contains("state              dismissed"), "{text}");
        assert!(text.contains("decision reason    no evidence"), "{text}");
        assert_eq!(appeal_json(&a)["state"], "dismissed");
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

    fn transfer() -> pb::OnwardTransfer {
        pb::OnwardTransfer {
            institution_code: "CCB".into(),
            account_number: "6217000000009999".into(),
            account_name: "Next Holder".into(),
            amount_fen: 1500,
            time: Some(time::from_millis(60_000)),
            transaction_reference: "SIM-I2-1".into(),
        }
    }

    fn chased() -> pb::Instruction {
        pb::Instruction {
            instruction_id: "I2".into(),
            state: pb::InstructionState::Partial as i32,
            action: pb::Action::StopPayment as i32,
            depth: 1,
            effective_until: Some(time::from_millis(172_800_000)),
            acknowledgement: Some(pb::Acknowledgement {
                outcome: Some(Outcome::Partial(pb::Partial {
                    amount_held_fen: 1500,
                    balance_fen: 0,
                    executed_at: Some(time::from_millis(0)),
                    onward_transfers: vec![transfer()],
                })),
                late_by_ms: 2_500,
                ..Default::default()
            }),
            hops: vec![
                pb::Hop {
                    transfer: Some(transfer()),
                    result: pb::HopResult::Followed as i32,
                    child_instruction_id: "I3".into(),
                    followed_amount_fen: 1500,
                },
                pb::Hop {
                    transfer: Some(transfer()),
                    result: pb::HopResult::Unreachable as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn lifecycle_notes_and_hops_are_shown() {
        let i = chased();
        let line = instruction_line(&i);
        assert!(line.contains("partial           stop-payment"), "{line}");
        assert!(
            line.ends_with("[until 1970-01-03T00:00:00Z; answered late by 2 s]"),
            "{line}"
        );
        let with_hops = instruction_with_hops(&i, 2);
        let lines: Vec<&str> = with_hops.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            "  hop -> CCB 6217000000009999 (Next Holder) 1500 fen at 1970-01-01T00:01:00Z ref SIM-I2-1  followed: I3 asks 1500 fen"
        );
        assert!(lines[2].ends_with("  unreachable"), "{}", lines[2]);
        // A released stop keeps its old expiry; it is not shown as in force.
        let released = pb::Instruction {
            state: pb::InstructionState::Released as i32,
            ..i.clone()
        };
        assert!(!instruction_line(&released).contains("until"));
        let lapsed = pb::Instruction {
            state: pb::InstructionState::Lapsed as i32,
            ..i.clone()
        };
        assert!(instruction_line(&lapsed).contains("lapsed at 1970-01-03T00:00:00Z"));
        // Unanswered with notes: the notes two spaces after the amount, as after an answer.
        let overdue = pb::Instruction {
            state: pb::InstructionState::Overdue as i32,
            acknowledgement: None,
            effective_until: None,
            overdue_at: Some(time::from_millis(0)),
            ..i.clone()
        };
        let line = instruction_line(&overdue);
        assert!(
            line.ends_with(" 0 fen  [overdue since 1970-01-01T00:00:00Z]"),
            "{line}"
        );
        let detail = instruction_detail(&i);
        assert!(
            detail.contains("in force until 1970-01-03T00:00:00Z"),
            "{detail}"
        );
        assert!(detail.contains("late by 2 s"), "{detail}");
    }

    #[test]
    fn instruction_json_has_the_lifecycle_fields() {
        let v = instruction_json(&chased());
        assert_eq!(v["effective_until"], "1970-01-03T00:00:00Z");
        assert_eq!(v["overdue_at"], Value::Null);
        assert_eq!(v["parent_instruction_id"], Value::Null);
        assert_eq!(v["hops"][0]["result"], "followed");
        assert_eq!(v["hops"][0]["child_instruction_id"], "I3");
        assert_eq!(v["hops"][1]["child_instruction_id"], Value::Null);
        assert_eq!(v["acknowledgement"]["late_by_ms"], 2_500);
        assert_eq!(
            v["acknowledgement"]["onward_transfers"][0]["time"],
            "1970-01-01T00:01:00Z"
        );
    }

    #[test]
    fn graphs_list_accounts_then_transfers() {
        let g = pb::CaseGraph {
            police_agency: "PSB-SZ".into(),
            case_reference: "SZ-1".into(),
            accounts: vec![pb::GraphAccount {
                institution_code: "ICBC".into(),
                account_number: "6222020000001117".into(),
                account_name: "Wang Wu".into(),
                depth: 1,
                requested_fen: 3000,
                held_fen: 1500,
                instruction_ids: vec!["I2".into(), "I5".into()],
            }],
            transfers: vec![pb::GraphTransfer {
                from_institution_code: "ICBC".into(),
                from_account_number: "6222020000001117".into(),
                from_instruction_id: "I2".into(),
                hop: chased().hops.first().cloned(),
            }],
        };
        let text = graph_lines(&g);
        assert!(text.starts_with("case SZ-1  agency PSB-SZ  1 account(s), 1 transfer(s)"));
        assert!(
            text.contains("  1     ICBC     6222020000001117     Wang Wu"),
            "{text}"
        );
        assert!(text.contains("I2,I5"), "{text}");
        assert!(
            text.contains("ICBC 6222020000001117 -> CCB 6217000000009999"),
            "{text}"
        );
        assert!(text.ends_with("(reported with I2)"), "{text}");
        let v = graph_json(&g);
        assert_eq!(v["accounts"][0]["held_fen"], 1500);
        assert_eq!(v["transfers"][0]["hop"]["followed_amount_fen"], 1500);
    }

    #[test]
    fn durations_are_rough() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(42_000), "42 s");
        assert_eq!(duration(180_000), "3 min");
        assert_eq!(duration(47 * 3_600_000), "47 h");
        assert_eq!(duration(180 * 86_400_000), "180 d");
        assert_eq!(duration(-5_000), "-5 s");
    }
}
