//! domain -> proto.

use prost_types::Timestamp as PbTimestamp;

use crate::domain::graph::CaseGraph;
use crate::domain::ids::Timestamp;
use crate::domain::instruction::{
    Hop, HopResult, InstructionRecord, MismatchField, OnwardTransfer, Outcome, State,
};
use crate::domain::notice::{
    AccountKind, Action, CaseFiling, FreezeMode, FreezeTerms, NoticeRecord, VictimTransfer,
};
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1 as police;

pub fn timestamp_to_proto(t: Timestamp) -> PbTimestamp {
    let ms = t.millis();
    PbTimestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn action_to_proto(a: Action) -> pb::Action {
    match a {
        Action::StopPayment => pb::Action::StopPayment,
        Action::Freeze => pb::Action::Freeze,
        Action::RenewFreeze => pb::Action::RenewFreeze,
        Action::ReleaseStop => pb::Action::ReleaseStop,
        Action::ReleaseFreeze => pb::Action::ReleaseFreeze,
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
        State::Overdue => pb::InstructionState::Overdue,
        State::Executed => pb::InstructionState::Executed,
        State::Partial => pb::InstructionState::Partial,
        State::Queued => pb::InstructionState::Queued,
        State::Mismatch => pb::InstructionState::Mismatch,
        State::AccountNotFound => pb::InstructionState::AccountNotFound,
        State::Rejected => pb::InstructionState::Rejected,
        State::Lapsed => pb::InstructionState::Lapsed,
        State::Released => pb::InstructionState::Released,
    }
}

fn onward_to_proto(list: &[OnwardTransfer]) -> Vec<pb::OnwardTransfer> {
    list.iter()
        .map(|t| pb::OnwardTransfer {
            institution_code: t.institution_code.clone(),
            account_number: t.account_number.as_str().to_owned(),
            account_name: t.account_name.clone(),
            amount_fen: t.amount.get(),
            time: Some(timestamp_to_proto(t.time)),
            transaction_reference: t.reference.clone(),
        })
        .collect()
}

fn outcome_to_proto(o: &Outcome) -> pb::acknowledgement::Outcome {
    use pb::acknowledgement::Outcome as O;
    match o {
        Outcome::Executed {
            held,
            balance,
            executed_at,
            onward,
        } => O::Executed(pb::Executed {
            amount_held_fen: held.get(),
            balance_fen: balance.get(),
            executed_at: Some(timestamp_to_proto(*executed_at)),
            onward_transfers: onward_to_proto(onward),
        }),
        Outcome::Partial {
            held,
            balance,
            executed_at,
            onward,
        } => O::Partial(pb::Partial {
            amount_held_fen: held.get(),
            balance_fen: balance.get(),
            executed_at: Some(timestamp_to_proto(*executed_at)),
            onward_transfers: onward_to_proto(onward),
        }),
        Outcome::Frozen {
            frozen,
            balance,
            available,
            not_frozen,
            not_frozen_reason,
            earlier,
            executed_at,
            onward,
        } => O::Frozen(pb::Frozen {
            amount_frozen_fen: frozen.get(),
            balance_fen: balance.get(),
            available_balance_fen: available.get(),
            amount_not_frozen_fen: not_frozen.get(),
            not_frozen_reason: not_frozen_reason.clone(),
            earlier_freezes: earlier
                .iter()
                .map(|e| pb::EarlierFreeze {
                    amount_fen: e.amount.get(),
                    expires_at: Some(timestamp_to_proto(e.expires_at)),
                    authority: e.authority.clone(),
                })
                .collect(),
            executed_at: Some(timestamp_to_proto(*executed_at)),
            onward_transfers: onward_to_proto(onward),
        }),
        Outcome::Done { executed_at } => O::Done(pb::Done {
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

fn freeze_to_proto(f: &FreezeTerms) -> pb::FreezeTerms {
    pb::FreezeTerms {
        mode: match f.mode {
            FreezeMode::AmountLimited => pb::FreezeMode::AmountLimited,
            FreezeMode::ReceiveOnly => pb::FreezeMode::ReceiveOnly,
        } as i32,
        major_case_approval: f.major.as_ref().map(|m| pb::MajorCaseApproval {
            approval_reference: m.reference.clone(),
            approved_by: m.approved_by.clone(),
        }),
    }
}

fn filing_to_proto(c: &CaseFiling) -> pb::CaseFiling {
    pb::CaseFiling {
        case_number: c.case_number.clone(),
        filed_at: Some(timestamp_to_proto(c.filed_at)),
    }
}

fn hop_to_proto(h: &Hop) -> pb::Hop {
    pb::Hop {
        transfer: onward_to_proto(std::slice::from_ref(&h.transfer)).pop(),
        result: match h.result {
            HopResult::Followed => pb::HopResult::Followed,
            HopResult::Unreachable => pb::HopResult::Unreachable,
            HopResult::Cycle => pb::HopResult::Cycle,
            HopResult::DepthLimit => pb::HopResult::DepthLimit,
            HopResult::NothingLeft => pb::HopResult::NothingLeft,
            HopResult::NotRequested => pb::HopResult::NotRequested,
            HopResult::StopLimit => pb::HopResult::StopLimit,
        } as i32,
        child_instruction_id: h.instruction_id.clone().unwrap_or_default(),
        followed_amount_fen: h.followed,
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
            follows_instruction_id: r.account.follows.clone().unwrap_or_default(),
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
            late_by_ms: a.late_by_ms,
            execution_time_discrepancy_ms: a.discrepancy_ms,
        }),
        updated_at: Some(timestamp_to_proto(r.updated_at)),
        references_instruction_id: r.references.clone().unwrap_or_default(),
        parent_instruction_id: r.parent.clone().unwrap_or_default(),
        depth: u32::from(r.depth),
        freeze: r.freeze.as_ref().map(freeze_to_proto),
        effective_until: r.effective_until.map(timestamp_to_proto),
        overdue_at: r.overdue_at.map(timestamp_to_proto),
        hops: r.hops.iter().map(hop_to_proto).collect(),
        renew_until: r.renew_until.map(timestamp_to_proto),
        case_filing: r.case_filing.as_ref().map(filing_to_proto),
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

pub fn graph_to_proto(agency: &str, case: &str, g: &CaseGraph) -> pb::CaseGraph {
    pb::CaseGraph {
        police_agency: agency.to_owned(),
        case_reference: case.to_owned(),
        accounts: g
            .accounts
            .iter()
            .map(|a| pb::GraphAccount {
                institution_code: a.institution.clone(),
                account_number: a.account.clone(),
                account_name: a.name.clone(),
                depth: u32::from(a.depth),
                requested_fen: a.requested,
                held_fen: a.held,
                instruction_ids: a.instruction_ids.clone(),
            })
            .collect(),
        transfers: g
            .edges
            .iter()
            .map(|e| pb::GraphTransfer {
                from_institution_code: e.from_institution.clone(),
                from_account_number: e.from_account.clone(),
                from_instruction_id: e.from_instruction.clone(),
                hop: Some(hop_to_proto(&e.hop)),
            })
            .collect(),
    }
}

pub fn subject_to_proto(s: &crate::domain::blacklist::Subject) -> pb::SubjectRef {
    use crate::domain::blacklist::DocumentType as D;
    pb::SubjectRef {
        document_type: match s.document_type {
            D::ResidentId => pb::DocumentType::ResidentId,
            D::Passport => pb::DocumentType::Passport,
            D::CreditCode => pb::DocumentType::UnifiedSocialCreditCode,
        } as i32,
        document_number: s.number.clone(),
    }
}

pub fn effects_to_proto(e: crate::domain::blacklist::Effects) -> pb::Effects {
    pb::Effects {
        bank_non_counter_suspended: e.bank_non_counter_suspended,
        payment_accounts_suspended: e.payment_accounts_suspended,
        no_new_accounts: e.no_new_accounts,
    }
}

pub fn entry_to_proto(e: &crate::domain::blacklist::Entry) -> pb::BlacklistEntry {
    use crate::domain::blacklist::ListingState as L;
    pb::BlacklistEntry {
        subject: Some(subject_to_proto(&e.subject)),
        subject_name: e.subject_name.clone(),
        state: match e.state {
            L::Listed => pb::ListingState::Listed,
            L::Delisted => pb::ListingState::Delisted,
            L::Lapsed => pb::ListingState::Lapsed,
            L::AppealUpheld => pb::ListingState::AppealUpheld,
        } as i32,
        legal_basis: e.basis.clone(),
        basis_table_version: e.table_version.clone(),
        effects: Some(effects_to_proto(e.effects)),
        listed_by: e.listed_by.clone(),
        case_reference: e.case_reference.clone(),
        listed_at: Some(timestamp_to_proto(e.listed_at)),
        consecutive_since: Some(timestamp_to_proto(e.consecutive_since)),
        expires_at: Some(timestamp_to_proto(e.expires_at)),
        version: e.version,
        removal_reason: e.removal_reason.clone(),
    }
}

pub fn appeal_to_proto(
    a: &crate::domain::blacklist::Appeal,
) -> crate::proto::stophub::oversight::v1::Appeal {
    use crate::domain::blacklist::AppealState as A;
    use crate::proto::stophub::oversight::v1 as o;
    o::Appeal {
        appeal_id: a.appeal_id.clone(),
        subject: Some(subject_to_proto(&a.subject)),
        grounds: a.grounds.clone(),
        state: match a.state {
            A::Pending => o::AppealState::Pending,
            A::Upheld => o::AppealState::Upheld,
            A::Dismissed => o::AppealState::Dismissed,
        } as i32,
        decision_reason: a.decision_reason.clone(),
        recorded_by: a.recorded_by.clone(),
        recorded_at: Some(timestamp_to_proto(a.recorded_at)),
        decided_by: a.decided_by.clone(),
        decided_at: a.decided_at.map(timestamp_to_proto),
    }
}

/// A change of the blacklist as the sync stream sends it.
pub fn change_to_proto(
    c: &crate::store::BlacklistChange,
) -> crate::proto::stophub::bank::v1::SyncBlacklistResponse {
    use crate::domain::blacklist::ChangeKind as K;
    use crate::proto::stophub::bank::v1 as b;
    b::SyncBlacklistResponse {
        kind: match c.kind {
            K::Listed => b::SyncKind::Listed,
            K::Extended => b::SyncKind::Extended,
            K::Delisted => b::SyncKind::Delisted,
            K::Lapsed => b::SyncKind::Lapsed,
        } as i32,
        version: c.version,
        subject: Some(subject_to_proto(&c.subject)),
        effects: Some(effects_to_proto(c.effects)),
        listed_until: Some(timestamp_to_proto(c.expires_at)),
    }
}

pub fn audit_to_proto(
    r: &crate::audit::AuditRecord,
) -> crate::proto::stophub::oversight::v1::AuditRecord {
    use crate::proto::stophub::oversight::v1 as o;
    o::AuditRecord {
        seq: r.seq,
        at: Some(timestamp_to_proto(r.at)),
        actor: r.actor.clone(),
        action: r.action.clone(),
        outcome: r.outcome.clone(),
        items: r
            .items
            .iter()
            .map(|i| o::AuditItem {
                kind: i.kind.clone(),
                id: i.id.clone(),
                detail: i.detail.clone(),
            })
            .collect(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    }
}

pub fn stats_to_proto(
    s: &crate::reports::InstitutionStats,
) -> crate::proto::stophub::oversight::v1::InstitutionStats {
    use crate::proto::stophub::oversight::v1 as o;
    let mut outcomes: Vec<o::OutcomeCount> = s
        .outcomes
        .iter()
        .map(|((action, state), count)| o::OutcomeCount {
            action: action_to_proto(*action) as i32,
            state: state_to_proto(*state) as i32,
            count: *count,
        })
        .collect();
    outcomes.sort_by_key(|o| (o.action, o.state));
    o::InstitutionStats {
        institution_code: s.institution.clone(),
        received: s.received,
        answered: s.answered,
        open: s.open,
        overdue: s.overdue,
        answered_late: s.answered_late,
        ack_p50_ms: s.percentile(0.50),
        ack_p95_ms: s.percentile(0.95),
        ack_p99_ms: s.percentile(0.99),
        ack_max_ms: s.ack_ms.last().copied().unwrap_or(0),
        outcomes,
    }
}

pub fn amount_to_proto(
    r: &crate::reports::AmountRow,
) -> crate::proto::stophub::oversight::v1::AmountRow {
    crate::proto::stophub::oversight::v1::AmountRow {
        key: r.key.clone(),
        requested_fen: r.requested,
        held_fen: r.held,
        not_held_fen: r.not_held,
        released_fen: r.released,
        instructions: r.instructions,
    }
}
