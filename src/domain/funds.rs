//! Following the money (逐级止付): from an answer's onward transfers, which next-level stops to
//! issue and for how much.
//!
//! Only the disputed amount is chased: what left the account is at most the amount requested
//! minus the amount held, and each followed transfer takes at most what flowed on it, in time
//! order, until that is used up. So along every path no level asks for more than came in.

use super::ids::Fen;
use super::instruction::{Hop, HopResult, InstructionRecord, OnwardTransfer};
use super::notice::AccountKind;

/// What the planner needs to know about the world.
pub trait FundsContext {
    /// The kind of account a registered institution holds, or None if it is not registered.
    fn institution_kind(&self, code: &str) -> Option<AccountKind>;
    /// An instruction already holding (or asked to hold) this account in the case, if any.
    fn holder_in_case(&self, institution: &str, account: &str) -> Option<String>;
    /// Stop-payments on this account in the case that did not fail.
    fn stops_in_case(&self, institution: &str, account: &str) -> usize;
}

/// A next-level stop to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStop {
    pub transfer: OnwardTransfer,
    pub kind: AccountKind,
    pub amount: Fen,
    /// Index into the plan's hops, to fill in the new instruction id.
    pub hop: usize,
    /// Later hops into the same account, folded into this stop, to point at it too.
    pub also: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub hops: Vec<Hop>,
    pub children: Vec<ChildStop>,
}

/// The onward transfers that following the money starts from: those of an answer that holds
/// money (EXECUTED, PARTIAL, QUEUED); none before an answer or after one that held nothing.
pub fn transfers_to_follow(rec: &InstructionRecord) -> &[OnwardTransfer] {
    match &rec.ack {
        Some(ack) if rec.state.holding() => ack.outcome.onward(),
        _ => &[],
    }
}

/// Plans the next level for `parent`, whose answer held `held` fen and reported `transfers`.
pub fn plan(
    parent: &InstructionRecord,
    transfers: &[OnwardTransfer],
    max_stops: usize,
    ctx: &dyn FundsContext,
) -> Plan {
    let mut ordered: Vec<&OnwardTransfer> = transfers.iter().collect();
    ordered.sort_by_key(|t| t.time);
    let mut remaining = (parent.account.amount.get() - parent.held()).max(0);
    let mut plan = Plan::default();
    // Accounts this plan itself stops, so two transfers into one account make one stop.
    let mut planned: Vec<(String, String, usize)> = Vec::new();
    for t in ordered {
        let hop = |result, followed| Hop {
            transfer: t.clone(),
            result,
            instruction_id: None,
            followed,
        };
        let account = t.account_number.as_str();
        if parent.follow_depth == 0 {
            plan.hops.push(hop(HopResult::NotRequested, 0));
            continue;
        }
        if parent.depth >= parent.follow_depth {
            plan.hops.push(hop(HopResult::DepthLimit, 0));
            continue;
        }
        let Some(kind) = ctx.institution_kind(&t.institution_code) else {
            plan.hops.push(hop(HopResult::Unreachable, 0));
            continue;
        };
        let same_account = (t.institution_code == parent.institution()
            && account == parent.account.account_number.as_str())
        .then(|| parent.instruction_id.clone());
        if let Some(holder) =
            same_account.or_else(|| ctx.holder_in_case(&t.institution_code, account))
        {
            let mut h = hop(HopResult::Cycle, 0);
            h.instruction_id = Some(holder);
            plan.hops.push(h);
            continue;
        }
        if let Some((_, _, first)) = planned
            .iter()
            .find(|(i, a, _)| *i == t.institution_code && a == account)
        {
            // A second transfer into an account this plan already stops: the same stop asks for
            // what flowed in on both (within what is left), rather than a second stop.
            let first = *first;
            let index = plan.hops.len();
            let amount = t.amount.get().min(remaining);
            remaining -= amount;
            let result = if amount > 0 {
                HopResult::Followed
            } else {
                HopResult::NothingLeft
            };
            plan.hops.push(hop(result, amount));
            if let Some(child) = plan.children.iter_mut().find(|c| c.hop == first) {
                child.amount = Fen::new_unchecked(child.amount.get() + amount);
                child.also.push(index);
            }
            continue;
        }
        if ctx.stops_in_case(&t.institution_code, account) >= max_stops {
            plan.hops.push(hop(HopResult::StopLimit, 0));
            continue;
        }
        if remaining == 0 {
            plan.hops.push(hop(HopResult::NothingLeft, 0));
            continue;
        }
        let amount = t.amount.get().min(remaining);
        remaining -= amount;
        planned.push((
            t.institution_code.clone(),
            account.to_owned(),
            plan.hops.len(),
        ));
        plan.children.push(ChildStop {
            transfer: t.clone(),
            kind,
            amount: Fen::new_unchecked(amount),
            hop: plan.hops.len(),
            also: Vec::new(),
        });
        plan.hops.push(hop(HopResult::Followed, amount));
    }
    plan
}

#[cfg(test)]
#[path = "funds_tests.rs"]
mod tests;
