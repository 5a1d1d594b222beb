//! The fund-flow graph of a case, built from its instructions: accounts as nodes, onward
//! transfers as edges (with what the hub did about each), for police and oversight.

use std::collections::BTreeMap;

use super::instruction::{Hop, InstructionRecord};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphAccount {
    pub institution: String,
    pub account: String,
    pub name: String,
    /// The shallowest level the account was reached at.
    pub depth: u8,
    /// The largest amount asked of it by one stop or freeze, in fen.
    pub requested: i64,
    /// The largest amount held on it by a stop or freeze in force now, in fen.
    pub held: i64,
    pub instruction_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphEdge {
    pub from_institution: String,
    pub from_account: String,
    pub from_instruction: String,
    pub hop: Hop,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseGraph {
    pub accounts: Vec<GraphAccount>,
    pub edges: Vec<GraphEdge>,
}

/// Builds the graph from every instruction of one case (renewals and releases are skipped).
pub fn build(records: &[InstructionRecord]) -> CaseGraph {
    let mut accounts: BTreeMap<(String, String), GraphAccount> = BTreeMap::new();
    let mut edges = Vec::new();
    for r in records.iter().filter(|r| r.action.holds_money()) {
        let key = (
            r.institution().to_owned(),
            r.account.account_number.as_str().to_owned(),
        );
        let node = accounts.entry(key).or_insert_with(|| GraphAccount {
            institution: r.institution().to_owned(),
            account: r.account.account_number.as_str().to_owned(),
            name: r.account.account_name.clone(),
            depth: r.depth,
            requested: 0,
            held: 0,
            instruction_ids: Vec::new(),
        });
        node.depth = node.depth.min(r.depth);
        node.requested = node.requested.max(r.account.amount.get());
        if r.state.holding() {
            node.held = node.held.max(r.held());
        }
        node.instruction_ids.push(r.instruction_id.clone());
        edges.extend(r.hops.iter().map(|hop| GraphEdge {
            from_institution: r.institution().to_owned(),
            from_account: r.account.account_number.as_str().to_owned(),
            from_instruction: r.instruction_id.clone(),
            hop: hop.clone(),
        }));
    }
    let mut accounts: Vec<GraphAccount> = accounts.into_values().collect();
    accounts.sort_by(|a, b| {
        (a.depth, &a.institution, &a.account).cmp(&(b.depth, &b.institution, &b.account))
    });
    CaseGraph { accounts, edges }
}
