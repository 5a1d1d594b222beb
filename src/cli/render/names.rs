//! Short names of the proto's enums, as the command line takes them and output shows them.

use super::*;

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

pub(super) fn kind_name(v: i32) -> &'static str {
    match pb::AccountKind::try_from(v) {
        Ok(pb::AccountKind::BankAccount) => "bank",
        Ok(pb::AccountKind::PaymentAccount) => "payment",
        Ok(pb::AccountKind::Unspecified) | Err(_) => "unspecified",
    }
}

pub(super) fn freeze_mode_name(v: i32) -> &'static str {
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
