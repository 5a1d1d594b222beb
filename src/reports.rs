//! Oversight reports, read from the store: statistics per institution, amounts, a case view,
//! blacklist figures. Read-only; each is one pass over the records it covers (run off the
//! request threads by the handlers).

use std::collections::{BTreeMap, BTreeSet};

use crate::audit::{self, AuditRecord};
use crate::domain::ids::Timestamp;
use crate::domain::instruction::{InstructionRecord, State};
use crate::domain::notice::Action;
use crate::error::Result;
use crate::store::{Store, TreeId, decode};

/// `[from, to)` on the hub's clock; `None` ends are open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Window {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t < to)
    }
}

#[derive(Debug, Clone, Default)]
pub struct InstitutionStats {
    pub institution: String,
    pub received: u64,
    pub answered: u64,
    pub open: u64,
    pub overdue: u64,
    pub answered_late: u64,
    /// Milliseconds from acceptance to answer, sorted.
    pub ack_ms: Vec<u64>,
    pub outcomes: std::collections::HashMap<(Action, State), u64>,
}

impl InstitutionStats {
    pub fn percentile(&self, p: f64) -> u64 {
        if self.ack_ms.is_empty() {
            return 0;
        }
        let i = ((self.ack_ms.len() as f64) * p).ceil() as usize;
        self.ack_ms[i.clamp(1, self.ack_ms.len()) - 1]
    }
}

fn instructions(store: &Store) -> impl Iterator<Item = Result<InstructionRecord>> + '_ {
    store
        .tree(TreeId::Instructions)
        .iter()
        .map(|e| decode(&e?.1))
}

/// Per institution: what it received in the window and how it answered.
pub fn stats(
    store: &Store,
    window: Window,
    institution: Option<&str>,
    now: Timestamp,
) -> Result<Vec<InstitutionStats>> {
    let mut by: BTreeMap<String, InstitutionStats> = BTreeMap::new();
    for rec in instructions(store) {
        let rec = rec?;
        if !window.contains(rec.created_at) || institution.is_some_and(|i| i != rec.institution()) {
            continue;
        }
        let s = by
            .entry(rec.institution().to_owned())
            .or_insert_with(|| InstitutionStats {
                institution: rec.institution().to_owned(),
                ..Default::default()
            });
        s.received += 1;
        match &rec.ack {
            Some(ack) => {
                s.answered += 1;
                s.answered_late += u64::from(ack.late_by_ms > 0);
                s.ack_ms
                    .push((ack.received_at.millis() - rec.created_at.millis()).max(0) as u64);
            }
            None => {
                s.open += 1;
                s.overdue += u64::from(rec.state == State::Overdue || now > rec.answer_due_at);
            }
        }
        *s.outcomes.entry((rec.action, rec.state)).or_default() += 1;
    }
    let mut out: Vec<InstitutionStats> = by.into_values().collect();
    for s in &mut out {
        s.ack_ms.sort_unstable();
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Case,
    Institution,
    Day,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmountRow {
    pub key: String,
    pub requested: i64,
    pub held: i64,
    pub not_held: i64,
    pub released: i64,
    pub instructions: u64,
}

/// Amounts over stop-payments and freezes accepted in the window, grouped, sorted by key.
pub fn amounts(store: &Store, window: Window, group: Grouping) -> Result<Vec<AmountRow>> {
    let mut rows: BTreeMap<String, AmountRow> = BTreeMap::new();
    for rec in instructions(store) {
        let rec = rec?;
        if !rec.action.holds_money() || !window.contains(rec.created_at) {
            continue;
        }
        let key = match group {
            Grouping::Case => format!("{}/{}", rec.police_agency, rec.case_reference),
            Grouping::Institution => rec.institution().to_owned(),
            Grouping::Day => crate::domain::policy::rfc3339(rec.created_at)[..10].to_owned(),
        };
        let row = rows.entry(key.clone()).or_insert_with(|| AmountRow {
            key,
            ..Default::default()
        });
        let requested = rec.account.amount.get();
        row.requested += requested;
        row.instructions += 1;
        if rec.ack.is_some() {
            row.held += rec.held();
            row.not_held += requested - rec.held();
        }
        if rec.state == State::Released {
            row.released += rec.held();
        }
    }
    Ok(rows.into_values().collect())
}

/// A case: its notice ids, instructions in creation order, and the audit records touching them.
pub fn case_view(
    store: &Store,
    agency: &str,
    case: &str,
) -> Result<(Vec<String>, Vec<InstructionRecord>, Vec<AuditRecord>)> {
    let mut records: Vec<InstructionRecord> = store
        .case_instructions(agency, case)?
        .into_iter()
        .filter_map(|(_, _, id)| store.instruction(&id).transpose())
        .collect::<Result<_>>()?;
    records.sort_by(|a, b| a.instruction_id.cmp(&b.instruction_id));
    let notices: BTreeSet<String> = records.iter().map(|r| r.notice_id.clone()).collect();
    let ids: BTreeSet<&str> = records
        .iter()
        .map(|r| r.instruction_id.as_str())
        .chain(notices.iter().map(String::as_str))
        .collect();
    let mut trail = Vec::new();
    let mut after = 0;
    loop {
        let page = audit::records_after(store, after, 4096)?;
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        trail.extend(
            page.into_iter()
                .filter(|r| r.items.iter().any(|i| ids.contains(i.id.as_str()))),
        );
        after = last;
    }
    Ok((notices.into_iter().collect(), records, trail))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlacklistFigures {
    pub in_force_by_basis: BTreeMap<String, u64>,
    pub listings: u64,
    pub extensions: u64,
    pub delistings: u64,
    pub lapses: u64,
    pub appeals_recorded: u64,
    pub appeals_upheld: u64,
    pub appeals_dismissed: u64,
}

/// Entries in force by basis, now; changes and appeals in the window, from the audit trail.
pub fn blacklist_figures(
    store: &Store,
    window: Window,
    now: Timestamp,
) -> Result<BlacklistFigures> {
    let mut f = BlacklistFigures::default();
    for e in store.tree(TreeId::Blacklist).iter() {
        let entry: crate::domain::blacklist::Entry = decode(&e?.1)?;
        if entry.state == crate::domain::blacklist::ListingState::Listed && entry.expires_at > now {
            *f.in_force_by_basis.entry(entry.basis).or_default() += 1;
        }
    }
    let mut after = 0;
    loop {
        let page = audit::records_after(store, after, 4096)?;
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        for r in page
            .iter()
            .filter(|r| window.contains(r.at) && r.outcome == "ok")
        {
            for i in &r.items {
                let counter = match (
                    i.kind.as_str(),
                    i.detail.split_whitespace().next().unwrap_or(""),
                ) {
                    ("blacklist", "Listed") => &mut f.listings,
                    ("blacklist", "Extended") => &mut f.extensions,
                    ("blacklist", "Delisted") => &mut f.delistings,
                    ("blacklist", "Lapsed") => &mut f.lapses,
                    ("appeal", "recorded") => &mut f.appeals_recorded,
                    ("appeal", "Upheld:") => &mut f.appeals_upheld,
                    ("appeal", "Dismissed:") => &mut f.appeals_dismissed,
                    _ => continue,
                };
                *counter += 1;
            }
        }
        after = last;
    }
    Ok(f)
}
