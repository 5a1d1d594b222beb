//! What request validation and conversion promise, as checks that property tests and fuzz
//! targets run on any request: parsing never panics; a refusal is INVALID_ARGUMENT naming a
//! field of the request (an index within the list it names), or FAILED_PRECONDITION starting
//! with one; an accepted request converts to the domain with its amounts, account numbers
//! and codes exactly as sent (names trimmed), and the domain rendered back to proto parses to
//! the same domain value. Not part of the hub's API: it exists so that `cargo test`
//! (proptest) and `fuzz/` (cargo-fuzz) check one thing.

use prost::Message;

use super::{
    check_subjects, instruction_to_proto, listing, new_notice, notice_to_proto, outcome, release,
    renewal, subject_to_proto,
};
use crate::domain::ids::{AccountNumber, Fen, InstitutionCode, Timestamp};
use crate::domain::instruction::{Acknowledgement, InstructionRecord, Outcome, State};
use crate::domain::notice::{
    AccountKind, Action, NewNotice, NoticeRecord, SuspectAccount, VictimTransfer,
};
use crate::error::Error;
use crate::hub::HubConfig;
use crate::participants::{Registry, demo};
use crate::proto::stophub::bank::v1 as bank;
use crate::proto::stophub::common::v1 as pb;
use crate::proto::stophub::police::v1 as police;

/// The hub's clock in these checks: 2026-11-28T06:00:00Z.
pub const NOW_SECONDS: i64 = 1_795_845_600;

/// The world requests are checked against: the demo participants, the default settings.
pub struct Edge {
    pub registry: Registry,
    pub config: HubConfig,
    pub now: Timestamp,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            registry: Registry::from_file(demo())
                .unwrap_or_else(|e| unreachable!("the demo participants are valid: {e}")),
            config: HubConfig::default(),
            now: Timestamp::from_millis(NOW_SECONDS * 1000),
        }
    }
}

/// A refusal names a field of the request whose top-level fields are `roots`; an index in it
/// is within the list it indexes (`lens`: the lengths of the request's lists, by path).
pub fn names_a_field(e: &Error, roots: &[&str], lens: &[(&str, usize)]) -> Result<(), String> {
    let field = match e {
        Error::InvalidArgument { field, rule } if !rule.is_empty() => field.as_str(),
        Error::FailedPrecondition(why) => why.split(':').next().unwrap_or_default(),
        other => return Err(format!("not a refusal of the request: {other:?}")),
    };
    let root = field.split(['.', '[']).next().unwrap_or_default();
    if !roots.contains(&root) {
        return Err(format!("{e} does not name a field of the request"));
    }
    if let Some((path, rest)) = field.split_once('[') {
        let index = rest.split(']').next().and_then(|i| i.parse::<usize>().ok());
        let len = lens.iter().find(|(p, _)| *p == path).map(|(_, len)| *len);
        match (index, len) {
            (Some(i), Some(len)) if i < len => {}
            _ => return Err(format!("{e}: the index is not one of the list's ({len:?})")),
        }
    }
    Ok(())
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, a: T, b: T) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("{what}: {a:?} became {b:?}"))
    }
}

/// A police notice: refused naming a field, or accepted as sent and stable under a round trip
/// through the rendered instructions.
pub fn check_notice(edge: &Edge, req: &police::SubmitNoticeRequest) -> Result<(), String> {
    let roots = [
        "request_id",
        "case_reference",
        "action",
        "victim_transfer",
        "suspect_accounts",
        "case_filing",
        "freeze",
        "follow_funds",
    ];
    let new = match new_notice(req, &edge.registry, &edge.config, edge.now) {
        Err(e) => {
            return names_a_field(
                &e,
                &roots,
                &[("suspect_accounts", req.suspect_accounts.len())],
            );
        }
        Ok(new) => new,
    };
    // Amounts, account numbers and codes exactly as sent; names trimmed.
    let victim = req.victim_transfer.clone().unwrap_or_default();
    same(
        "victim",
        (
            victim.amount_fen,
            victim.account_number.as_str(),
            victim.institution_code.as_str(),
            victim.account_name.trim(),
        ),
        (
            new.victim.amount.get(),
            new.victim.account_number.as_str(),
            new.victim.institution_code.as_str(),
            new.victim.account_name.as_str(),
        ),
    )?;
    let sent: Vec<_> = req
        .suspect_accounts
        .iter()
        .map(|a| {
            (
                a.amount_fen,
                a.account_number.as_str(),
                a.institution_code.as_str(),
                a.account_name.trim(),
            )
        })
        .collect();
    let got: Vec<_> = new
        .accounts
        .iter()
        .map(|a| {
            (
                a.amount.get(),
                a.account_number.as_str(),
                a.institution_code.as_str(),
                a.account_name.as_str(),
            )
        })
        .collect();
    same("suspect accounts", sent, got)?;
    let again = new_notice(
        &rendered(edge, &new),
        &edge.registry,
        &edge.config,
        edge.now,
    )
    .map_err(|e| format!("the rendered notice is refused: {e}"))?;
    same("round trip", &new, &again)
}

/// The request that the notice's rendered instructions say was made.
fn rendered(edge: &Edge, new: &NewNotice) -> police::SubmitNoticeRequest {
    let notice = NoticeRecord {
        notice_id: "N000000000001".into(),
        request_id: new.request_id.clone(),
        case_reference: new.case_reference.clone(),
        police_agency: "PSB-SZ".into(),
        action: new.action,
        victim: new.victim.clone(),
        instruction_ids: Vec::new(),
        created_at: edge.now,
        payload_hash: new.payload_hash(),
        case_filing: new.case_filing.clone(),
        freeze: new.freeze.clone(),
        follow_depth: new.follow_depth,
    };
    let instructions: Vec<InstructionRecord> = new
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let id = format!("I{:012}", i + 2);
            InstructionRecord::pending(id, &notice, a.clone(), edge.now, &edge.config.policy)
        })
        .collect();
    let shown = notice_to_proto(&notice, &instructions);
    let first = shown.instructions.first().cloned().unwrap_or_default();
    police::SubmitNoticeRequest {
        request_id: shown.request_id,
        case_reference: shown.case_reference,
        action: shown.action,
        victim_transfer: shown.victim_transfer,
        suspect_accounts: shown
            .instructions
            .into_iter()
            .filter_map(|i| i.account)
            .collect(),
        case_filing: first.case_filing,
        freeze: first.freeze,
        follow_funds: (new.follow_depth > 0).then(|| police::FollowFunds {
            enabled: true,
            max_depth: u32::from(new.follow_depth),
        }),
    }
}

/// An institution's answer: refused naming a field, or accepted with its amounts as sent and
/// stable under a round trip through the rendered instruction.
pub fn check_answer(edge: &Edge, req: &bank::AcknowledgeRequest) -> Result<(), String> {
    let roots = [
        "outcome",
        "executed",
        "partial",
        "frozen",
        "done",
        "mismatch",
        "account_not_found",
        "rejected",
    ];
    let lens = answer_lists(req.outcome.as_ref());
    let parsed = match outcome(req.outcome.as_ref(), &edge.config, edge.now) {
        Err(e) => return names_a_field(&e, &roots, &lens),
        Ok(parsed) => parsed,
    };
    use bank::acknowledge_request::Outcome as B;
    let sent_held = match req.outcome.as_ref() {
        Some(B::Executed(e)) => e.amount_held_fen,
        Some(B::Partial(p)) => p.amount_held_fen,
        Some(B::Frozen(f)) => f.amount_frozen_fen,
        Some(B::Done(_) | B::Mismatch(_) | B::AccountNotFound(_) | B::Rejected(_)) | None => 0,
    };
    same("held", sent_held, parsed.held())?;
    let sent_onward: Vec<(&str, &str, i64)> = match req.outcome.as_ref() {
        Some(B::Executed(e)) => onward_of(&e.onward_transfers),
        Some(B::Partial(p)) => onward_of(&p.onward_transfers),
        Some(B::Frozen(f)) => onward_of(&f.onward_transfers),
        _ => Vec::new(),
    };
    let got_onward: Vec<(&str, &str, i64)> = parsed
        .onward()
        .iter()
        .map(|t| {
            (
                t.institution_code.as_str(),
                t.account_number.as_str(),
                t.amount.get(),
            )
        })
        .collect();
    same("onward transfers", sent_onward, got_onward)?;
    let again = outcome(
        rendered_answer(edge, &parsed).as_ref(),
        &edge.config,
        edge.now,
    )
    .map_err(|e| format!("the rendered answer is refused: {e}"))?;
    same("round trip", parsed, again)
}

/// The lengths of the answer's lists, by the path a refusal names them with.
fn answer_lists(o: Option<&bank::acknowledge_request::Outcome>) -> Vec<(&'static str, usize)> {
    use bank::acknowledge_request::Outcome as O;
    match o {
        Some(O::Executed(e)) => vec![("executed.onward_transfers", e.onward_transfers.len())],
        Some(O::Partial(p)) => vec![("partial.onward_transfers", p.onward_transfers.len())],
        Some(O::Frozen(f)) => vec![
            ("frozen.onward_transfers", f.onward_transfers.len()),
            ("frozen.earlier_freezes", f.earlier_freezes.len()),
        ],
        Some(O::Mismatch(m)) => vec![("mismatch.fields", m.fields.len())],
        Some(O::Done(_) | O::AccountNotFound(_) | O::Rejected(_)) | None => Vec::new(),
    }
}

fn onward_of(list: &[pb::OnwardTransfer]) -> Vec<(&str, &str, i64)> {
    list.iter()
        .map(|t| {
            (
                t.institution_code.as_str(),
                t.account_number.as_str(),
                t.amount_fen,
            )
        })
        .collect()
}

/// The answer as an instruction carrying it shows it, turned back into a bank's answer.
fn rendered_answer(edge: &Edge, parsed: &Outcome) -> Option<bank::acknowledge_request::Outcome> {
    use bank::acknowledge_request::Outcome as B;
    use pb::acknowledgement::Outcome as C;
    let notice = NoticeRecord {
        notice_id: "N000000000001".into(),
        request_id: "R-1".into(),
        case_reference: "CASE-1".into(),
        police_agency: "PSB-SZ".into(),
        action: Action::StopPayment,
        victim: VictimTransfer {
            institution_code: InstitutionCode::parse("CMB").ok()?,
            account_number: AccountNumber::parse("621483000001").ok()?,
            account_name: "Li Si".into(),
            currency: "CNY".into(),
            amount: Fen::new_unchecked(1),
            transfer_time: edge.now,
            transaction_reference: "TX-1".into(),
        },
        instruction_ids: Vec::new(),
        created_at: edge.now,
        payload_hash: String::new(),
        case_filing: None,
        freeze: None,
        follow_depth: 0,
    };
    let account = SuspectAccount {
        institution_code: InstitutionCode::parse("ICBC").ok()?,
        account_number: AccountNumber::parse("622202123456").ok()?,
        account_name: "Wang Wu".into(),
        account_kind: AccountKind::Bank,
        amount: Fen::new_unchecked(1),
        follows: None,
    };
    let mut rec = InstructionRecord::pending(
        "I000000000002".into(),
        &notice,
        account,
        edge.now,
        &edge.config.policy,
    );
    rec.state = State::Executed;
    rec.ack = Some(Acknowledgement {
        outcome: parsed.clone(),
        received_at: edge.now,
        late_by_ms: 0,
        discrepancy_ms: 0,
    });
    Some(match instruction_to_proto(&rec).acknowledgement?.outcome? {
        C::Executed(e) => B::Executed(e),
        C::Partial(p) => B::Partial(p),
        C::Mismatch(m) => B::Mismatch(m),
        C::AccountNotFound(n) => B::AccountNotFound(n),
        C::Rejected(r) => B::Rejected(r),
        C::Frozen(f) => B::Frozen(f),
        C::Done(d) => B::Done(d),
    })
}

/// A blacklist listing: refused naming a field, or accepted with a subject that renders and
/// parses back to itself.
pub fn check_listing(req: &police::ListSubjectRequest) -> Result<(), String> {
    let roots = [
        "request_id",
        "subject",
        "subject_name",
        "legal_basis",
        "case_reference",
    ];
    match listing(req) {
        Err(e) => names_a_field(&e, &roots, &[]),
        Ok(l) => {
            let again = super::subject("subject", Some(&subject_to_proto(&l.subject)))
                .map_err(|e| format!("the rendered subject is refused: {e}"))?;
            same("round trip", &l.subject, &again)?;
            same("legal basis", req.legal_basis.trim(), l.basis.as_str())
        }
    }
}

/// A blacklist check: refused naming a field, or one subject per subject asked about, each
/// stable under a round trip.
pub fn check_screening(req: &bank::CheckSubjectRequest) -> Result<(), String> {
    match check_subjects(&req.subjects) {
        Err(e) => names_a_field(&e, &["subjects"], &[("subjects", req.subjects.len())]),
        Ok(subjects) => {
            same("subjects", req.subjects.len(), subjects.len())?;
            let shown: Vec<pb::SubjectRef> = subjects.iter().map(subject_to_proto).collect();
            let again = check_subjects(&shown)
                .map_err(|e| format!("the rendered subjects are refused: {e}"))?;
            same("round trip", subjects, again)
        }
    }
}

/// Renewals and releases: refused naming a field, or accepted with the ids as sent.
pub fn check_follow_ups(
    renew: &police::RenewFreezeRequest,
    release_req: &police::ReleaseRequest,
) -> Result<(), String> {
    let roots = ["request_id", "instruction_id", "renew_until", "reason"];
    match renewal(renew) {
        Err(e) => names_a_field(&e, &roots, &[])?,
        Ok(f) => same("target", renew.instruction_id.as_str(), f.target.as_str())?,
    }
    match release(release_req) {
        Err(e) => names_a_field(&e, &roots, &[]),
        Ok(f) => same(
            "target",
            release_req.instruction_id.as_str(),
            f.target.as_str(),
        ),
    }
}

/// Arbitrary bytes as each request the hub parses: what prost decodes is checked as above.
pub fn check_bytes(edge: &Edge, bytes: &[u8]) -> Result<(), String> {
    if let Ok(req) = police::SubmitNoticeRequest::decode(bytes) {
        check_notice(edge, &req)?;
    }
    if let Ok(req) = bank::AcknowledgeRequest::decode(bytes) {
        check_answer(edge, &req)?;
    }
    if let Ok(req) = police::ListSubjectRequest::decode(bytes) {
        check_listing(&req)?;
    }
    if let Ok(req) = bank::CheckSubjectRequest::decode(bytes) {
        check_screening(&req)?;
    }
    if let (Ok(renew), Ok(release)) = (
        police::RenewFreezeRequest::decode(bytes),
        police::ReleaseRequest::decode(bytes),
    ) {
        check_follow_ups(&renew, &release)?;
    }
    Ok(())
}
