//! proto -> domain: where input is validated. Every refusal names the field and the rule.

use std::collections::HashSet;

use prost_types::Timestamp as PbTimestamp;

use crate::domain::ids::{self, AccountNumber, Fen, InstitutionCode, Timestamp};
use crate::domain::instruction::{EarlierFreeze, MismatchField, OnwardTransfer, Outcome, State};
use crate::domain::notice::{
    AccountKind, Action, CaseFiling, FollowUpKind, FreezeMode, FreezeTerms,
    MAX_ACCOUNTS_PER_NOTICE, MajorApproval, NewFollowUp, NewNotice, SuspectAccount, VictimTransfer,
};
use crate::error::{Error, Result};
use crate::hub::HubConfig;
use crate::participants::PoliceLevel;
use crate::participants::{InstitutionKind, Registry};
use crate::proto::stophub::bank::v1 as bank;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1 as police;

/// Largest length of names and references.
const MAX_NAME: usize = 64;
/// Largest length of free-text details and reasons.
const MAX_DETAIL: usize = 256;

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
        Ok(pb::Action::Freeze) => Ok(Action::Freeze),
        Ok(pb::Action::RenewFreeze) => Err(Error::invalid(
            "action",
            "renew a freeze with the RenewFreeze RPC",
        )),
        Ok(pb::Action::ReleaseStop | pb::Action::ReleaseFreeze) => Err(Error::invalid(
            "action",
            "release a stop or freeze with the Release RPC",
        )),
        Ok(pb::Action::Unspecified) => Err(Error::invalid(
            "action",
            "is required (ACTION_STOP_PAYMENT or ACTION_FREEZE)",
        )),
        Err(_) => Err(Error::invalid("action", format!("unknown value {v}"))),
    }
}

/// Parses a proto action filter value (oversight lists).
pub fn action_filter(field: &str, v: i32) -> Result<Action> {
    match pb::Action::try_from(v) {
        Ok(pb::Action::StopPayment) => Ok(Action::StopPayment),
        Ok(pb::Action::Freeze) => Ok(Action::Freeze),
        Ok(pb::Action::RenewFreeze) => Ok(Action::RenewFreeze),
        Ok(pb::Action::ReleaseStop) => Ok(Action::ReleaseStop),
        Ok(pb::Action::ReleaseFreeze) => Ok(Action::ReleaseFreeze),
        Ok(pb::Action::Unspecified) | Err(_) => {
            Err(Error::invalid(field, format!("unknown action {v}")))
        }
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
        Ok(pb::InstructionState::Overdue) => Ok(State::Overdue),
        Ok(pb::InstructionState::Queued) => Ok(State::Queued),
        Ok(pb::InstructionState::Lapsed) => Ok(State::Lapsed),
        Ok(pb::InstructionState::Released) => Ok(State::Released),
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
        follows: match a.follows_instruction_id.as_str() {
            "" => None,
            id => Some(
                ids::request_id(id)
                    .map_err(|rule| Error::invalid(f("follows_instruction_id"), rule))?,
            ),
        },
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
    let (case_filing, freeze) = freeze_particulars(req, action, registry, config, now)?;
    if action != Action::Freeze {
        if let Some(i) = accounts.iter().position(|a| a.follows.is_some()) {
            return Err(Error::invalid(
                format!("suspect_accounts[{i}].follows_instruction_id"),
                "is only for freezes",
            ));
        }
    }
    Ok(NewNotice {
        request_id,
        case_reference,
        action,
        victim,
        accounts,
        case_filing,
        freeze,
        follow_depth: follow_depth(req.follow_funds.as_ref())?,
    })
}

fn follow_depth(f: Option<&police::FollowFunds>) -> Result<u8> {
    match f {
        None => Ok(0),
        Some(f) if !f.enabled => Ok(0),
        Some(f) => match f.max_depth {
            0 => Ok(3),
            d @ 1..=5 => Ok(d as u8),
            _ => Err(Error::invalid(
                "follow_funds.max_depth",
                "must be 1-5 (0 means 3)",
            )),
        },
    }
}

/// The case filing and freeze terms: required for a freeze, which needs a filed case.
fn freeze_particulars(
    req: &police::SubmitNoticeRequest,
    action: Action,
    registry: &Registry,
    config: &HubConfig,
    now: Timestamp,
) -> Result<(Option<CaseFiling>, Option<FreezeTerms>)> {
    let case_filing = match &req.case_filing {
        None => None,
        Some(c) => {
            let filed_at = timestamp_from_proto("case_filing.filed_at", c.filed_at.as_ref())?;
            not_in_future("case_filing.filed_at", filed_at, now, config)?;
            Some(CaseFiling {
                case_number: text("case_filing.case_number", &c.case_number, true, MAX_NAME)?,
                filed_at,
            })
        }
    };
    if action != Action::Freeze {
        if req.freeze.is_some() {
            return Err(Error::invalid("freeze", "is only for ACTION_FREEZE"));
        }
        return Ok((case_filing, None));
    }
    if case_filing.is_none() {
        return Err(Error::FailedPrecondition(
            "case_filing: a freeze needs a filed case (立案): give case_filing.case_number and case_filing.filed_at; \
             before filing, use an emergency stop-payment"
                .into(),
        ));
    }
    let terms = req.freeze.as_ref().ok_or_else(|| {
        Error::invalid(
            "freeze",
            "is required for ACTION_FREEZE (the mode, and any major-case approval)",
        )
    })?;
    let mode = match pb::FreezeMode::try_from(terms.mode) {
        Ok(pb::FreezeMode::AmountLimited) => FreezeMode::AmountLimited,
        Ok(pb::FreezeMode::ReceiveOnly) => FreezeMode::ReceiveOnly,
        Ok(pb::FreezeMode::Unspecified) | Err(_) => {
            return Err(Error::invalid(
                "freeze.mode",
                "is required (FREEZE_MODE_AMOUNT_LIMITED or FREEZE_MODE_RECEIVE_ONLY)",
            ));
        }
    };
    let major = match &terms.major_case_approval {
        None => None,
        Some(m) => {
            let approved_by = m.approved_by.as_str();
            match registry.police(approved_by).map(|p| p.level) {
                Some(PoliceLevel::City) => {}
                Some(PoliceLevel::County) => {
                    return Err(Error::invalid(
                        "freeze.major_case_approval.approved_by",
                        format!(
                            "{approved_by} is a county-level agency; a major case needs city-level approval"
                        ),
                    ));
                }
                None => {
                    return Err(Error::invalid(
                        "freeze.major_case_approval.approved_by",
                        format!("{approved_by:?} is not a registered police agency"),
                    ));
                }
            }
            Some(MajorApproval {
                reference: text(
                    "freeze.major_case_approval.approval_reference",
                    &m.approval_reference,
                    true,
                    MAX_NAME,
                )?,
                approved_by: approved_by.to_owned(),
            })
        }
    };
    Ok((case_filing, Some(FreezeTerms { mode, major })))
}

/// A renewal request.
pub fn renewal(req: &police::RenewFreezeRequest) -> Result<NewFollowUp> {
    Ok(NewFollowUp {
        request_id: ids::request_id(&req.request_id)
            .map_err(|rule| Error::invalid("request_id", rule))?,
        target: instruction_id("instruction_id", &req.instruction_id)?,
        kind: FollowUpKind::Renew {
            until: req
                .renew_until
                .as_ref()
                .map(|t| timestamp_from_proto("renew_until", Some(t)))
                .transpose()?,
        },
    })
}

/// A release request.
pub fn release(req: &police::ReleaseRequest) -> Result<NewFollowUp> {
    Ok(NewFollowUp {
        request_id: ids::request_id(&req.request_id)
            .map_err(|rule| Error::invalid("request_id", rule))?,
        target: instruction_id("instruction_id", &req.instruction_id)?,
        kind: FollowUpKind::Release {
            reason: text("reason", &req.reason, true, MAX_DETAIL)?,
        },
    })
}

/// An instruction id as a client passes it back.
pub fn instruction_id(field: &str, s: &str) -> Result<String> {
    if s.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    ids::request_id(s).map_err(|rule| Error::invalid(field, rule))
}

fn onward(
    prefix: &str,
    list: &[pb::OnwardTransfer],
    config: &HubConfig,
    now: Timestamp,
) -> Result<Vec<OnwardTransfer>> {
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let f = |name: &str| format!("{prefix}.onward_transfers[{i}].{name}");
            InstitutionCode::parse(&t.institution_code)
                .map_err(|rule| Error::invalid(f("institution_code"), rule))?;
            let time = timestamp_from_proto(&f("time"), t.time.as_ref())?;
            not_in_future(&f("time"), time, now, config)?;
            Ok(OnwardTransfer {
                institution_code: t.institution_code.clone(),
                account_number: account_number(&f("account_number"), &t.account_number)?,
                account_name: text(&f("account_name"), &t.account_name, true, MAX_NAME)?,
                amount: positive_fen(&f("amount_fen"), t.amount_fen, config)?,
                time,
                reference: text(
                    &f("transaction_reference"),
                    &t.transaction_reference,
                    true,
                    MAX_NAME,
                )?,
            })
        })
        .collect()
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
            "exactly one of executed, partial, frozen, done, mismatch, account_not_found, rejected is required",
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
                onward: onward("executed", &e.onward_transfers, config, now)?,
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
                onward: onward("partial", &p.onward_transfers, config, now)?,
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
        Some(O::Frozen(fz)) => frozen(fz, config, now),
        Some(O::Done(d)) => {
            let executed_at = timestamp_from_proto("done.executed_at", d.executed_at.as_ref())?;
            not_in_future("done.executed_at", executed_at, now, config)?;
            Ok(Outcome::Done { executed_at })
        }
    }
}

fn frozen(fz: &pb::Frozen, config: &HubConfig, now: Timestamp) -> Result<Outcome> {
    let fen = |name: &str, v: i64| non_negative_fen(&format!("frozen.{name}"), v, config);
    let executed_at = timestamp_from_proto("frozen.executed_at", fz.executed_at.as_ref())?;
    not_in_future("frozen.executed_at", executed_at, now, config)?;
    let earlier = fz
        .earlier_freezes
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let f = |name: &str| format!("frozen.earlier_freezes[{i}].{name}");
            Ok(EarlierFreeze {
                amount: non_negative_fen(&f("amount_fen"), e.amount_fen, config)?,
                expires_at: timestamp_from_proto(&f("expires_at"), e.expires_at.as_ref())?,
                authority: text(&f("authority"), &e.authority, true, MAX_NAME)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Outcome::Frozen {
        frozen: fen("amount_frozen_fen", fz.amount_frozen_fen)?,
        balance: fen("balance_fen", fz.balance_fen)?,
        available: fen("available_balance_fen", fz.available_balance_fen)?,
        not_frozen: fen("amount_not_frozen_fen", fz.amount_not_frozen_fen)?,
        not_frozen_reason: text(
            "frozen.not_frozen_reason",
            &fz.not_frozen_reason,
            false,
            MAX_DETAIL,
        )?,
        earlier,
        executed_at,
        onward: onward("frozen", &fz.onward_transfers, config, now)?,
    })
}

fn document_type(field: &str, v: i32) -> Result<crate::domain::blacklist::DocumentType> {
    use crate::domain::blacklist::DocumentType as D;
    match pb::DocumentType::try_from(v) {
        Ok(pb::DocumentType::ResidentId) => Ok(D::ResidentId),
        Ok(pb::DocumentType::Passport) => Ok(D::Passport),
        Ok(pb::DocumentType::UnifiedSocialCreditCode) => Ok(D::CreditCode),
        Ok(pb::DocumentType::Unspecified) | Err(_) => Err(Error::invalid(
            format!("{field}.document_type"),
            "is required (DOCUMENT_TYPE_RESIDENT_ID, DOCUMENT_TYPE_PASSPORT or DOCUMENT_TYPE_UNIFIED_SOCIAL_CREDIT_CODE)",
        )),
    }
}

/// A subject reference, normalised and checked (check characters included).
pub fn subject(
    field: &str,
    s: Option<&pb::SubjectRef>,
) -> Result<crate::domain::blacklist::Subject> {
    let s = s.ok_or_else(|| Error::invalid(field, "is required"))?;
    let kind = document_type(field, s.document_type)?;
    crate::domain::blacklist::Subject::parse(kind, &s.document_number)
        .map_err(|rule| Error::invalid(format!("{field}.document_number"), rule))
}

/// A listing request.
pub fn listing(req: &police::ListSubjectRequest) -> Result<crate::domain::blacklist::NewListing> {
    Ok(crate::domain::blacklist::NewListing {
        request_id: ids::request_id(&req.request_id)
            .map_err(|rule| Error::invalid("request_id", rule))?,
        subject: subject("subject", req.subject.as_ref())?,
        subject_name: text("subject_name", &req.subject_name, false, MAX_NAME)?,
        basis: text("legal_basis", &req.legal_basis, true, MAX_NAME)?,
        case_reference: text("case_reference", &req.case_reference, true, MAX_NAME)?,
    })
}

/// Free text required in a request (reasons, grounds).
pub fn required_text(field: &str, s: &str, max: usize) -> Result<String> {
    text(field, s, true, max)
}

/// The subjects of one blacklist check: 1-100.
pub fn check_subjects(list: &[pb::SubjectRef]) -> Result<Vec<crate::domain::blacklist::Subject>> {
    if list.is_empty() || list.len() > 100 {
        return Err(Error::invalid(
            "subjects",
            format!("1-100 subjects per check ({} given)", list.len()),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| subject(&format!("subjects[{i}]"), Some(s)))
        .collect()
}
