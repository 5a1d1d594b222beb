//! proto <-> domain, and nowhere else. Parsing from proto is where input is validated: every
//! refusal names the field (with its index in lists) and the rule.

use std::collections::HashSet;

use prost_types::Timestamp as PbTimestamp;

use crate::domain::ids::{self, AccountNumber, Fen, InstitutionCode, Timestamp};
use crate::domain::instruction::{InstructionRecord, MismatchField, Outcome, State};
use crate::domain::notice::{
    AccountKind, Action, MAX_ACCOUNTS_PER_NOTICE, NewNotice, NoticeRecord, SuspectAccount,
    VictimTransfer,
};
use crate::error::{Error, Result};
use crate::hub::HubConfig;
use crate::participants::{InstitutionKind, Registry};
use crate::proto::stophub::bank::v1 as bank;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1 as police;

/// Largest length of names and references.
const MAX_NAME: usize = 64;
/// Largest length of free-text details and reasons.
const MAX_DETAIL: usize = 256;

pub fn timestamp_to_proto(t: Timestamp) -> PbTimestamp {
    let ms = t.millis();
    PbTimestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn timestamp_from_proto(field: &str, t: Option<&PbTimestamp>) -> Result<Timestamp> {
    let t = t.ok_or_else(|| Error::invalid(field, "is required"))?;
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(field, "nanos must be 0-999999999"));
    }
    // Year 1970 to 9999: anything else is not an instant a transfer happened at.
    if !(0..=253_402_300_799).contains(&t.seconds) {
        return Err(Error::invalid(
            field,
            "must be between 1970-01-01 and 9999-12-31",
        ));
    }
    Ok(Timestamp::from_millis(
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000),
    ))
}

fn not_in_future(field: &str, t: Timestamp, now: Timestamp, config: &HubConfig) -> Result<()> {
    if t > now.plus_millis(config.max_future_skew_ms) {
        return Err(Error::invalid(
            field,
            format!(
                "must not be in the future of the hub's clock by more than {} s",
                config.max_future_skew_ms / 1000
            ),
        ));
    }
    Ok(())
}

fn text(field: &str, s: &str, required: bool, max: usize) -> Result<String> {
    ids::text(s, required, max).map_err(|rule| Error::invalid(field, rule))
}

fn registered_institution(field: &str, code: &str, registry: &Registry) -> Result<InstitutionCode> {
    let parsed = InstitutionCode::parse(code).map_err(|rule| Error::invalid(field, rule))?;
    if registry.institution(code).is_none() {
        return Err(Error::invalid(
            field,
            format!("institution {code} is not registered at the hub"),
        ));
    }
    Ok(parsed)
}

fn account_number(field: &str, s: &str) -> Result<AccountNumber> {
    AccountNumber::parse(s).map_err(|rule| Error::invalid(field, rule))
}

fn positive_fen(field: &str, v: i64, config: &HubConfig) -> Result<Fen> {
    Fen::parse_positive(v, config.max_amount_fen).map_err(|rule| Error::invalid(field, rule))
}

fn non_negative_fen(field: &str, v: i64, config: &HubConfig) -> Result<Fen> {
    Fen::parse_non_negative(v, config.max_amount_fen).map_err(|rule| Error::invalid(field, rule))
}

fn action_from_proto(v: i32) -> Result<Action> {
    match pb::Action::try_from(v) {
        Ok(pb::Action::StopPayment) => Ok(Action::StopPayment),
        Ok(pb::Action::Unspecified) => Err(Error::invalid(
            "action",
            "is required (ACTION_STOP_PAYMENT)",
        )),
        Err(_) => Err(Error::invalid("action", format!("unknown value {v}"))),
    }
}

fn action_to_proto(a: Action) -> pb::Action {
    match a {
        Action::StopPayment => pb::Action::StopPayment,
    }
}

fn account_kind_to_proto(k: AccountKind) -> pb::AccountKind {
    match k {
        AccountKind::Bank => pb::AccountKind::BankAccount,
        AccountKind::Payment => pb::AccountKind::PaymentAccount,
    }
}

pub fn state_to_proto(s: State) -> pb::InstructionState {
    match s {
        State::Pending => pb::InstructionState::Pending,
        State::Delivered => pb::InstructionState::Delivered,
        State::Executed => pb::InstructionState::Executed,
        State::Partial => pb::InstructionState::Partial,
        State::Mismatch => pb::InstructionState::Mismatch,
        State::AccountNotFound => pb::InstructionState::AccountNotFound,
        State::Rejected => pb::InstructionState::Rejected,
    }
}

pub fn state_from_proto(field: &str, v: i32) -> Result<State> {
    match pb::InstructionState::try_from(v) {
        Ok(pb::InstructionState::Pending) => Ok(State::Pending),
        Ok(pb::InstructionState::Delivered) => Ok(State::Delivered),
        Ok(pb::InstructionState::Executed) => Ok(State::Executed),
        Ok(pb::InstructionState::Partial) => Ok(State::Partial),
        Ok(pb::InstructionState::Mismatch) => Ok(State::Mismatch),
        Ok(pb::InstructionState::AccountNotFound) => Ok(State::AccountNotFound),
        Ok(pb::InstructionState::Rejected) => Ok(State::Rejected),
        Ok(pb::InstructionState::Unspecified) | Err(_) => Err(Error::invalid(
            field,
            format!("unknown instruction state {v}"),
        )),
    }
}

fn victim_from_proto(
    v: Option<&pb::VictimTransfer>,
    registry: &Registry,
    config: &HubConfig,
    now: Timestamp,
) -> Result<VictimTransfer> {
    let v = v.ok_or_else(|| Error::invalid("victim_transfer", "is required"))?;
    let f = |name: &str| format!("victim_transfer.{name}");
    if v.currency != "CNY" {
        return Err(Error::invalid(
            f("currency"),
            "must be \"CNY\" (the only currency the hub accepts)",
        ));
    }
    let transfer_time = timestamp_from_proto(&f("transfer_time"), v.transfer_time.as_ref())?;
    not_in_future(&f("transfer_time"), transfer_time, now, config)?;
    Ok(VictimTransfer {
        institution_code: registered_institution(
            &f("institution_code"),
            &v.institution_code,
            registry,
        )?,
        account_number: account_number(&f("account_number"), &v.account_number)?,
        account_name: text(&f("account_name"), &v.account_name, true, MAX_NAME)?,
        currency: v.currency.clone(),
        amount: positive_fen(&f("amount_fen"), v.amount_fen, config)?,
        transfer_time,
        transaction_reference: text(
            &f("transaction_reference"),
            &v.transaction_reference,
            true,
            MAX_NAME,
        )?,
    })
}

fn suspect_from_proto(
    i: usize,
    a: &pb::SuspectAccount,
    registry: &Registry,
    config: &HubConfig,
) -> Result<SuspectAccount> {
    let f = |name: &str| format!("suspect_accounts[{i}].{name}");
    let institution_code =
        registered_institution(&f("institution_code"), &a.institution_code, registry)?;
    let account_kind = match pb::AccountKind::try_from(a.account_kind) {
        Ok(pb::AccountKind::BankAccount) => AccountKind::Bank,
        Ok(pb::AccountKind::PaymentAccount) => AccountKind::Payment,
        Ok(pb::AccountKind::Unspecified) | Err(_) => {
            return Err(Error::invalid(
                f("account_kind"),
                "is required (ACCOUNT_KIND_BANK_ACCOUNT or ACCOUNT_KIND_PAYMENT_ACCOUNT)",
            ));
        }
    };
    let held_by = registry
        .institution(institution_code.as_str())
        .map(|x| x.kind);
    match (account_kind, held_by) {
        (AccountKind::Bank, Some(InstitutionKind::Payment)) => {
            return Err(Error::invalid(
                f("account_kind"),
                format!(
                    "{institution_code} is a payment institution; it holds payment accounts, not bank accounts"
                ),
            ));
        }
        (AccountKind::Payment, Some(InstitutionKind::Bank)) => {
            return Err(Error::invalid(
                f("account_kind"),
                format!(
                    "{institution_code} is a bank; it holds bank accounts, not payment accounts"
                ),
            ));
        }
        _ => {}
    }
    Ok(SuspectAccount {
        institution_code,
        account_number: account_number(&f("account_number"), &a.account_number)?,
        account_name: text(&f("account_name"), &a.account_name, true, MAX_NAME)?,
        account_kind,
        amount: positive_fen(&f("amount_fen"), a.amount_fen, config)?,
    })
}

/// A police notice, validated in full or refused with the first broken rule.
pub fn new_notice(
    req: &police::SubmitNoticeRequest,
    registry: &Registry,
    config: &HubConfig,
    now: Timestamp,
) -> Result<NewNotice> {
    let request_id =
        ids::request_id(&req.request_id).map_err(|rule| Error::invalid("request_id", rule))?;
    let case_reference = text("case_reference", &req.case_reference, true, MAX_NAME)?;
    let action = action_from_proto(req.action)?;
    let victim = victim_from_proto(req.victim_transfer.as_ref(), registry, config, now)?;
    if req.suspect_accounts.is_empty() {
        return Err(Error::invalid(
            "suspect_accounts",
            "at least one account is required",
        ));
    }
    if req.suspect_accounts.len() > MAX_ACCOUNTS_PER_NOTICE {
        return Err(Error::invalid(
            "suspect_accounts",
            format!(
                "at most {MAX_ACCOUNTS_PER_NOTICE} accounts per notice (bulk safeguard; {} given)",
                req.suspect_accounts.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut accounts = Vec::with_capacity(req.suspect_accounts.len());
    for (i, a) in req.suspect_accounts.iter().enumerate() {
        let account = suspect_from_proto(i, a, registry, config)?;
        if !seen.insert((
            account.institution_code.clone(),
            account.account_number.clone(),
        )) {
            return Err(Error::invalid(
                format!("suspect_accounts[{i}]"),
                format!(
                    "account {} at {} appears more than once in the notice",
                    account.account_number.masked(),
                    account.institution_code
                ),
            ));
        }
        accounts.push(account);
    }
    Ok(NewNotice {
        request_id,
        case_reference,
        action,
        victim,
        accounts,
    })
}

fn hold(
    prefix: &str,
    held: i64,
    balance: i64,
    executed_at: Option<&PbTimestamp>,
    config: &HubConfig,
    now: Timestamp,
) -> Result<(Fen, Fen, Timestamp)> {
    let held = positive_fen(&format!("{prefix}.amount_held_fen"), held, config)?;
    let balance = non_negative_fen(&format!("{prefix}.balance_fen"), balance, config)?;
    let field = format!("{prefix}.executed_at");
    let at = timestamp_from_proto(&field, executed_at)?;
    not_in_future(&field, at, now, config)?;
    Ok((held, balance, at))
}

/// An institution's answer, validated on its own (fitting it to the instruction is the
/// domain's job).
pub fn outcome(
    outcome: Option<&bank::acknowledge_request::Outcome>,
    config: &HubConfig,
    now: Timestamp,
) -> Result<Outcome> {
    use bank::acknowledge_request::Outcome as O;
    match outcome {
        None => Err(Error::invalid(
            "outcome",
            "exactly one of executed, partial, mismatch, account_not_found, rejected is required",
        )),
        Some(O::Executed(e)) => {
            let (held, balance, executed_at) = hold(
                "executed",
                e.amount_held_fen,
                e.balance_fen,
                e.executed_at.as_ref(),
                config,
                now,
            )?;
            Ok(Outcome::Executed {
                held,
                balance,
                executed_at,
            })
        }
        Some(O::Partial(p)) => {
            let (held, balance, executed_at) = hold(
                "partial",
                p.amount_held_fen,
                p.balance_fen,
                p.executed_at.as_ref(),
                config,
                now,
            )?;
            Ok(Outcome::Partial {
                held,
                balance,
                executed_at,
            })
        }
        Some(O::Mismatch(m)) => {
            if m.fields.is_empty() {
                return Err(Error::invalid(
                    "mismatch.fields",
                    "name at least one field that did not match",
                ));
            }
            let mut fields = Vec::with_capacity(m.fields.len());
            for (i, v) in m.fields.iter().enumerate() {
                let field = match pb::MismatchField::try_from(*v) {
                    Ok(pb::MismatchField::AccountName) => MismatchField::AccountName,
                    Ok(pb::MismatchField::AccountNumber) => MismatchField::AccountNumber,
                    Ok(pb::MismatchField::Amount) => MismatchField::Amount,
                    Ok(pb::MismatchField::TransferTime) => MismatchField::TransferTime,
                    Ok(pb::MismatchField::Unspecified) | Err(_) => {
                        return Err(Error::invalid(
                            format!("mismatch.fields[{i}]"),
                            format!("unknown field {v}"),
                        ));
                    }
                };
                if fields.contains(&field) {
                    return Err(Error::invalid(
                        format!("mismatch.fields[{i}]"),
                        "each field at most once",
                    ));
                }
                fields.push(field);
            }
            fields.sort();
            Ok(Outcome::Mismatch {
                fields,
                detail: text("mismatch.detail", &m.detail, false, MAX_DETAIL)?,
            })
        }
        Some(O::AccountNotFound(n)) => Ok(Outcome::AccountNotFound {
            detail: text("account_not_found.detail", &n.detail, false, MAX_DETAIL)?,
        }),
        Some(O::Rejected(r)) => Ok(Outcome::Rejected {
            reason: text("rejected.reason", &r.reason, true, MAX_DETAIL)?,
        }),
    }
}

fn outcome_to_proto(o: &Outcome) -> pb::acknowledgement::Outcome {
    use pb::acknowledgement::Outcome as O;
    match o {
        Outcome::Executed {
            held,
            balance,
            executed_at,
        } => O::Executed(pb::Executed {
            amount_held_fen: held.get(),
            balance_fen: balance.get(),
            executed_at: Some(timestamp_to_proto(*executed_at)),
        }),
        Outcome::Partial {
            held,
            balance,
            executed_at,
        } => O::Partial(pb::Partial {
            amount_held_fen: held.get(),
            balance_fen: balance.get(),
            executed_at: Some(timestamp_to_proto(*executed_at)),
        }),
        Outcome::Mismatch { fields, detail } => O::Mismatch(pb::Mismatch {
            fields: fields
                .iter()
                .map(|f| match f {
                    MismatchField::AccountName => pb::MismatchField::AccountName,
                    MismatchField::AccountNumber => pb::MismatchField::AccountNumber,
                    MismatchField::Amount => pb::MismatchField::Amount,
                    MismatchField::TransferTime => pb::MismatchField::TransferTime,
                } as i32)
                .collect(),
            detail: detail.clone(),
        }),
        Outcome::AccountNotFound { detail } => O::AccountNotFound(pb::AccountNotFound {
            detail: detail.clone(),
        }),
        Outcome::Rejected { reason } => O::Rejected(pb::Rejected {
            reason: reason.clone(),
        }),
    }
}

fn victim_to_proto(v: &VictimTransfer) -> pb::VictimTransfer {
    pb::VictimTransfer {
        institution_code: v.institution_code.to_string(),
        account_number: v.account_number.as_str().to_owned(),
        account_name: v.account_name.clone(),
        currency: v.currency.clone(),
        amount_fen: v.amount.get(),
        transfer_time: Some(timestamp_to_proto(v.transfer_time)),
        transaction_reference: v.transaction_reference.clone(),
    }
}

pub fn instruction_to_proto(r: &InstructionRecord) -> pb::Instruction {
    pb::Instruction {
        instruction_id: r.instruction_id.clone(),
        notice_id: r.notice_id.clone(),
        case_reference: r.case_reference.clone(),
        police_agency: r.police_agency.clone(),
        action: action_to_proto(r.action) as i32,
        account: Some(pb::SuspectAccount {
            institution_code: r.account.institution_code.to_string(),
            account_number: r.account.account_number.as_str().to_owned(),
            account_name: r.account.account_name.clone(),
            account_kind: account_kind_to_proto(r.account.account_kind) as i32,
            amount_fen: r.account.amount.get(),
        }),
        victim_transfer: Some(victim_to_proto(&r.victim)),
        state: state_to_proto(r.state) as i32,
        sequence: r.sequence,
        created_at: Some(timestamp_to_proto(r.created_at)),
        answer_due_at: Some(timestamp_to_proto(r.answer_due_at)),
        delivered_at: r.delivered_at.map(timestamp_to_proto),
        acknowledgement: r.ack.as_ref().map(|a| pb::Acknowledgement {
            outcome: Some(outcome_to_proto(&a.outcome)),
            received_at: Some(timestamp_to_proto(a.received_at)),
        }),
        updated_at: Some(timestamp_to_proto(r.updated_at)),
    }
}

pub fn notice_to_proto(n: &NoticeRecord, instructions: &[InstructionRecord]) -> police::Notice {
    police::Notice {
        notice_id: n.notice_id.clone(),
        request_id: n.request_id.clone(),
        case_reference: n.case_reference.clone(),
        police_agency: n.police_agency.clone(),
        action: action_to_proto(n.action) as i32,
        victim_transfer: Some(victim_to_proto(&n.victim)),
        instructions: instructions.iter().map(instruction_to_proto).collect(),
    }
}
