//! Blacklist records for people and as JSON: subjects, effects, entries, appeals, checks.

use super::*;

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
