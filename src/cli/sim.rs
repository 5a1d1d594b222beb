//! The simulated bank of `bank listen --auto-ack`: an in-memory ledger that answers every
//! action the hub sends (stop-payments, freezes, renewals, releases), and reports onward
//! transfers so that a demo can show the hub following the money.
//!
//! Every account gets a balance the first time it is seen: `--balance-fen` if given, else
//! twice the amount requested; an account number ending in 7 has half the amount requested
//! (so a stop is answered PARTIAL), one ending in 0 does not exist. Money held by a stop or
//! frozen stays in the account but is not available to the holder: a stop holds what is
//! available, a freeze that follows a stop takes over that stop's hold, a release or a lapse
//! gives the hold back.

use std::collections::{BTreeMap, HashMap};

use prost_types::Timestamp;

use super::time;
use crate::proto::stophub::bank::v1::acknowledge_request::Outcome;
use crate::proto::stophub::common::v1 as pb;

/// How long after the victim's transfer the simulated onward transfers leave, in ms.
const ONWARD_DELAY_MS: i64 = 60_000;
/// How long a simulated earlier freeze still runs, in ms (90 days).
const EARLIER_FREEZE_MS: i64 = 90 * 86_400_000;

/// `--onward INST:ACCOUNT:NAME:PERCENT`: where the simulated bank says the missing money went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnwardRule {
    pub institution: String,
    pub account: String,
    pub name: String,
    /// Share of the amount not held (requested - held), 1-100.
    pub percent: u32,
}

/// `--earlier-freeze AUTHORITY:AMOUNT_FEN`: an earlier freeze by another authority, reported
/// with every freeze answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierRule {
    pub authority: String,
    pub amount_fen: i64,
}

/// Parses `INST:ACCOUNT:NAME:PERCENT`; the name may contain ':'.
pub fn parse_onward_rule(s: &str) -> Result<OnwardRule, String> {
    let usage = "expected INST:ACCOUNT:NAME:PERCENT, e.g. CCB:6217000000009999:Next Holder:100";
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 4 {
        return Err(format!("{s:?}: {usage}"));
    }
    let last = parts[parts.len() - 1].trim();
    let percent = last
        .trim_end_matches('%')
        .parse::<u32>()
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| format!("{s:?}: PERCENT {last:?} must be a whole number 1-100; {usage}"))?;
    let rule = OnwardRule {
        institution: parts[0].trim().to_owned(),
        account: parts[1].trim().to_owned(),
        name: parts[2..parts.len() - 1].join(":").trim().to_owned(),
        percent,
    };
    if rule.institution.is_empty() || rule.account.is_empty() || rule.name.is_empty() {
        return Err(format!(
            "{s:?}: INST, ACCOUNT and NAME must not be empty; {usage}"
        ));
    }
    Ok(rule)
}

/// Parses `AUTHORITY:AMOUNT_FEN`; the authority may contain ':'.
pub fn parse_earlier_rule(s: &str) -> Result<EarlierRule, String> {
    let usage = "expected AUTHORITY:AMOUNT_FEN, e.g. 'Beijing Chaoyang Court:100000'";
    let (authority, amount) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: {usage}"))?;
    let amount_fen = amount.trim().parse::<i64>().map_err(|_| {
        format!("{s:?}: AMOUNT_FEN {amount:?} is not a whole number of fen; {usage}")
    })?;
    let authority = authority.trim().to_owned();
    if authority.is_empty() {
        return Err(format!("{s:?}: AUTHORITY must not be empty; {usage}"));
    }
    Ok(EarlierRule {
        authority,
        amount_fen,
    })
}

/// One simulated account: its money, and the holds on it by instruction id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Account {
    balance: i64,
    holds: BTreeMap<String, i64>,
}

impl Account {
    /// What the holder may still use.
    fn available(&self) -> i64 {
        (self.balance - self.holds.values().sum::<i64>()).max(0)
    }
}

/// The simulated bank.
#[derive(Debug, Default)]
pub struct Simulator {
    /// `--balance-fen`: every account's starting balance.
    pub fixed_balance: Option<i64>,
    /// `--onward`: where the money not held went.
    pub onward: Vec<OnwardRule>,
    /// `--onward-depth`: report onward transfers only for instructions at this level or above
    /// (1 = the accounts police named), so that a chase ends.
    pub onward_depth: u32,
    /// `--earlier-freeze`.
    pub earlier: Option<EarlierRule>,
    accounts: HashMap<String, Account>,
}

impl Simulator {
    pub fn new(
        fixed_balance: Option<i64>,
        onward: Vec<OnwardRule>,
        onward_depth: u32,
        earlier: Option<EarlierRule>,
    ) -> Self {
        Self {
            fixed_balance,
            onward,
            onward_depth,
            earlier,
            accounts: HashMap::new(),
        }
    }

    /// The account, opened on first sight with a balance derived from `requested`; None for
    /// an account the simulated bank does not hold.
    fn account(&mut self, number: &str, requested: i64) -> Option<&mut Account> {
        if self.fixed_balance.is_none() && number.ends_with('0') {
            return None;
        }
        let balance = self.fixed_balance.unwrap_or(if number.ends_with('7') {
            requested / 2
        } else {
            requested.saturating_mul(2)
        });
        Some(
            self.accounts
                .entry(number.to_owned())
                .or_insert_with(|| Account {
                    balance,
                    holds: BTreeMap::new(),
                }),
        )
    }

    /// The answer to one instruction, applied to the ledger.
    pub fn answer(&mut self, i: &pb::Instruction, now: Timestamp) -> Outcome {
        let Some(a) = &i.account else {
            return rejected("no account in the instruction");
        };
        let (number, requested) = (a.account_number.as_str(), a.amount_fen);
        match pb::Action::try_from(i.action) {
            Ok(pb::Action::StopPayment) => self.stop(i, number, requested, now),
            Ok(pb::Action::Freeze) => self.freeze(i, number, requested, now),
            Ok(pb::Action::RenewFreeze) => done(now),
            Ok(pb::Action::ReleaseStop | pb::Action::ReleaseFreeze) => {
                self.lift(number, &i.references_instruction_id);
                done(now)
            }
            Ok(pb::Action::Unspecified) | Err(_) => {
                rejected(&format!("simulated ledger: unknown action {}", i.action))
            }
        }
    }

    /// A stop or freeze lapsed (or was released): its hold goes back to the holder.
    pub fn lift(&mut self, number: &str, instruction_id: &str) {
        if let Some(a) = self.accounts.get_mut(number) {
            a.holds.remove(instruction_id);
        }
    }

    fn stop(
        &mut self,
        i: &pb::Instruction,
        number: &str,
        requested: i64,
        now: Timestamp,
    ) -> Outcome {
        let Some(account) = self.account(number, requested) else {
            return not_found();
        };
        let available = account.available();
        let executed_at = Some(now);
        if available >= requested {
            account.holds.insert(i.instruction_id.clone(), requested);
            Outcome::Executed(pb::Executed {
                amount_held_fen: requested,
                balance_fen: available - requested,
                executed_at,
                onward_transfers: Vec::new(),
            })
        } else if available > 0 {
            account.holds.insert(i.instruction_id.clone(), available);
            Outcome::Partial(pb::Partial {
                amount_held_fen: available,
                balance_fen: 0,
                executed_at,
                onward_transfers: self.onward_for(i, requested - available, now),
            })
        } else {
            rejected("simulated ledger: the balance is zero; nothing to hold")
        }
    }

    /// Freezes what is available, after taking over the hold of the stop the freeze follows.
    fn freeze(
        &mut self,
        i: &pb::Instruction,
        number: &str,
        requested: i64,
        now: Timestamp,
    ) -> Outcome {
        let Some(account) = self.account(number, requested) else {
            return not_found();
        };
        account.holds.remove(&i.references_instruction_id);
        let frozen = requested.min(account.available());
        if frozen > 0 {
            account.holds.insert(i.instruction_id.clone(), frozen);
        }
        let (balance, available) = (account.balance, account.available());
        let not_frozen = requested - frozen;
        if frozen == 0 && self.earlier.is_none() {
            // Nothing to freeze and nothing to queue behind: the hub wants REJECTED then.
            return Outcome::Rejected(pb::Rejected {
                reason: "nothing available to freeze".to_owned(),
            });
        }
        let earlier_freezes = self
            .earlier
            .iter()
            .map(|e| pb::EarlierFreeze {
                amount_fen: e.amount_fen,
                expires_at: Some(plus_millis(&now, EARLIER_FREEZE_MS)),
                authority: e.authority.clone(),
            })
            .collect();
        Outcome::Frozen(pb::Frozen {
            amount_frozen_fen: frozen,
            balance_fen: balance,
            available_balance_fen: available,
            amount_not_frozen_fen: not_frozen,
            not_frozen_reason: if not_frozen > 0 {
                "insufficient balance".to_owned()
            } else {
                String::new()
            },
            earlier_freezes,
            executed_at: Some(now),
            onward_transfers: self.onward_for(i, not_frozen, now),
        })
    }

    /// Where `missing` fen (requested - held) went, per `--onward`: each rule's share, a
    /// minute after the victim's transfer (but not in the future), for instructions no deeper
    /// than `--onward-depth`.
    pub fn onward_for(
        &self,
        i: &pb::Instruction,
        missing: i64,
        now: Timestamp,
    ) -> Vec<pb::OnwardTransfer> {
        // A freeze that follows a stop sees the same money: its transfers were reported with
        // the stop already, and reporting them again would count them twice.
        if missing <= 0
            || i.depth.max(1) > self.onward_depth
            || !i.references_instruction_id.is_empty()
        {
            return Vec::new();
        }
        let victim_time = i
            .victim_transfer
            .as_ref()
            .and_then(|v| v.transfer_time)
            .unwrap_or(now);
        let time = earliest(&plus_millis(&victim_time, ONWARD_DELAY_MS), &now);
        // Not before the victim's transfer, even when that is slightly in the hub's future.
        let time = latest(&time, &victim_time);
        self.onward
            .iter()
            .enumerate()
            .filter_map(|(n, rule)| {
                let amount = i64::try_from(i128::from(missing) * i128::from(rule.percent) / 100)
                    .unwrap_or(i64::MAX);
                (amount > 0).then(|| pb::OnwardTransfer {
                    institution_code: rule.institution.clone(),
                    account_number: rule.account.clone(),
                    account_name: rule.name.clone(),
                    amount_fen: amount,
                    time: Some(time),
                    transaction_reference: format!("SIM-{}-{}", i.instruction_id, n + 1),
                })
            })
            .collect()
    }
}

fn millis(t: &Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

fn plus_millis(t: &Timestamp, ms: i64) -> Timestamp {
    time::from_millis(millis(t) + ms)
}

fn earliest(a: &Timestamp, b: &Timestamp) -> Timestamp {
    if millis(a) <= millis(b) { *a } else { *b }
}

fn latest(a: &Timestamp, b: &Timestamp) -> Timestamp {
    if millis(a) >= millis(b) { *a } else { *b }
}

fn done(now: Timestamp) -> Outcome {
    Outcome::Done(pb::Done {
        executed_at: Some(now),
    })
}

fn rejected(reason: &str) -> Outcome {
    Outcome::Rejected(pb::Rejected {
        reason: reason.to_owned(),
    })
}

fn not_found() -> Outcome {
    Outcome::AccountNotFound(pb::AccountNotFound {
        detail: "simulated ledger: no such account".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_849_200_000; // 2026-11-28T07:00:00Z

    fn at(ms: i64) -> Timestamp {
        time::from_millis(ms)
    }

    fn instruction(
        id: &str,
        action: pb::Action,
        account: &str,
        amount_fen: i64,
    ) -> pb::Instruction {
        pb::Instruction {
            instruction_id: id.into(),
            action: action as i32,
            depth: 1,
            account: Some(pb::SuspectAccount {
                institution_code: "ICBC".into(),
                account_number: account.into(),
                account_name: "Li Si".into(),
                account_kind: pb::AccountKind::BankAccount as i32,
                amount_fen,
                ..Default::default()
            }),
            victim_transfer: Some(pb::VictimTransfer {
                transfer_time: Some(at(NOW - 3_600_000)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn stop(id: &str, account: &str, amount: i64) -> pb::Instruction {
        instruction(id, pb::Action::StopPayment, account, amount)
    }

    fn freeze(id: &str, account: &str, amount: i64) -> pb::Instruction {
        instruction(id, pb::Action::Freeze, account, amount)
    }

    fn next_holder(percent: u32) -> OnwardRule {
        OnwardRule {
            institution: "CCB".into(),
            account: "6217000000009999".into(),
            name: "Next Holder".into(),
            percent,
        }
    }

    #[test]
    fn stops_are_answered_by_account_number() {
        let mut sim = Simulator::new(None, Vec::new(), 1, None);
        let executed = |balance_fen| {
            Outcome::Executed(pb::Executed {
                amount_held_fen: 100,
                balance_fen,
                executed_at: Some(at(NOW)),
                onward_transfers: Vec::new(),
            })
        };
        assert_eq!(
            sim.answer(&stop("I1", "6222020200001234", 100), at(NOW)),
            executed(100)
        );
        assert_eq!(
            sim.answer(&stop("I2", "6222020200001234", 100), at(NOW)),
            executed(0)
        );
        assert!(matches!(
            sim.answer(&stop("I3", "6222020200001234", 100), at(NOW)),
            Outcome::Rejected(_)
        ));
        let partial = pb::Partial {
            amount_held_fen: 50,
            balance_fen: 0,
            executed_at: Some(at(NOW)),
            onward_transfers: Vec::new(),
        };
        assert_eq!(
            sim.answer(&stop("I4", "6222020200001237", 100), at(NOW)),
            Outcome::Partial(partial)
        );
        assert!(matches!(
            sim.answer(&stop("I5", "6222020200001230", 100), at(NOW)),
            Outcome::AccountNotFound(_)
        ));
        // A release gives the hold back.
        let mut release = instruction("I6", pb::Action::ReleaseStop, "6222020200001234", 100);
        release.references_instruction_id = "I2".into();
        assert!(
            matches!(sim.answer(&release, at(NOW)), Outcome::Done(d) if d.executed_at == Some(at(NOW)))
        );
        assert_eq!(
            sim.answer(&stop("I7", "6222020200001234", 100), at(NOW)),
            executed(0)
        );
    }

    #[test]
    fn fixed_balance_applies_to_every_account() {
        let mut sim = Simulator::new(Some(30), Vec::new(), 1, None);
        assert!(matches!(
            sim.answer(&stop("I1", "6222020200001230", 100), at(NOW)),
            Outcome::Partial(p) if p.amount_held_fen == 30
        ));
        assert!(matches!(
            sim.answer(&stop("I2", "6222020200001231", 10), at(NOW)),
            Outcome::Executed(e) if e.balance_fen == 20
        ));
    }

    #[test]
    fn freezes_freeze_what_is_available() {
        let mut sim = Simulator::new(None, Vec::new(), 1, None);
        // Balance 2000: the whole amount is frozen.
        let whole = sim.answer(&freeze("I1", "6222020200001234", 1000), at(NOW));
        let expected = pb::Frozen {
            amount_frozen_fen: 1000,
            balance_fen: 2000,
            available_balance_fen: 1000,
            amount_not_frozen_fen: 0,
            not_frozen_reason: String::new(),
            earlier_freezes: Vec::new(),
            executed_at: Some(at(NOW)),
            onward_transfers: Vec::new(),
        };
        assert_eq!(whole, Outcome::Frozen(expected));
        // Balance 500 of 1000: half frozen, the rest not, for want of money.
        let Outcome::Frozen(f) = sim.answer(&freeze("I2", "6222020200001237", 1000), at(NOW))
        else {
            panic!("frozen expected")
        };
        assert_eq!(
            (
                f.amount_frozen_fen,
                f.balance_fen,
                f.available_balance_fen,
                f.amount_not_frozen_fen
            ),
            (500, 500, 0, 500)
        );
        assert_eq!(f.not_frozen_reason, "insufficient balance");
        assert!(matches!(
            sim.answer(&freeze("I3", "6222020200001230", 1000), at(NOW)),
            Outcome::AccountNotFound(_)
        ));
    }

    #[test]
    fn a_freeze_takes_over_the_hold_of_the_stop_it_follows() {
        let mut sim = Simulator::new(None, Vec::new(), 1, None);
        assert!(matches!(
            sim.answer(&stop("I1", "6222020200001237", 1000), at(NOW)),
            Outcome::Partial(p) if p.amount_held_fen == 500
        ));
        // Without following the stop, nothing is left to freeze: refused, as the hub asks.
        assert!(matches!(
            sim.answer(&freeze("I2", "6222020200001237", 1000), at(NOW)),
            Outcome::Rejected(_)
        ));
        let mut follows = freeze("I3", "6222020200001237", 1000);
        follows.references_instruction_id = "I1".into();
        let Outcome::Frozen(f) = sim.answer(&follows, at(NOW)) else {
            panic!("frozen expected")
        };
        assert_eq!(
            (f.amount_frozen_fen, f.balance_fen, f.available_balance_fen),
            (500, 500, 0)
        );
        // Lapsing the freeze gives the money back.
        sim.lift("6222020200001237", "I3");
        assert!(matches!(
            sim.answer(&stop("I4", "6222020200001237", 1000), at(NOW)),
            Outcome::Partial(p) if p.amount_held_fen == 500
        ));
    }

    #[test]
    fn earlier_freezes_are_reported_with_every_freeze() {
        let earlier = EarlierRule {
            authority: "Chaoyang Court".into(),
            amount_fen: 700,
        };
        let mut sim = Simulator::new(None, Vec::new(), 1, Some(earlier));
        let Outcome::Frozen(f) = sim.answer(&freeze("I1", "6222020200001234", 1000), at(NOW))
        else {
            panic!("frozen expected")
        };
        assert_eq!(
            f.earlier_freezes,
            vec![pb::EarlierFreeze {
                amount_fen: 700,
                expires_at: Some(at(NOW + 90 * 86_400_000)),
                authority: "Chaoyang Court".into(),
            }]
        );
        // Stops are not affected.
        assert!(matches!(
            sim.answer(&stop("I2", "6222020200001235", 10), at(NOW)),
            Outcome::Executed(_)
        ));
    }

    #[test]
    fn onward_transfers_carry_a_share_of_what_was_not_held() {
        let rules = vec![
            next_holder(100),
            OnwardRule {
                institution: "ABC".into(),
                account: "6228000000001111".into(),
                name: "Third: Party".into(),
                percent: 33,
            },
        ];
        let mut sim = Simulator::new(None, rules, 1, None);
        let Outcome::Partial(p) = sim.answer(&stop("I9", "6222020200001237", 1001), at(NOW)) else {
            panic!("partial expected")
        };
        assert_eq!(p.amount_held_fen, 500);
        let t = &p.onward_transfers;
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0],
            pb::OnwardTransfer {
                institution_code: "CCB".into(),
                account_number: "6217000000009999".into(),
                account_name: "Next Holder".into(),
                amount_fen: 501,
                time: Some(at(NOW - 3_600_000 + 60_000)),
                transaction_reference: "SIM-I9-1".into(),
            }
        );
        assert_eq!(
            (t[1].amount_fen, t[1].transaction_reference.as_str()),
            (165, "SIM-I9-2")
        );
        // A whole hold reports nothing.
        assert!(matches!(
            sim.answer(&stop("I10", "6222020200001234", 1000), at(NOW)),
            Outcome::Executed(e) if e.onward_transfers.is_empty()
        ));
    }

    #[test]
    fn onward_times_are_clamped_and_depth_is_limited() {
        let sim = Simulator::new(None, vec![next_holder(50)], 1, None);
        let mut i = stop("I1", "6222020200001237", 1000);
        // The victim's transfer 30 s ago: a minute later would be in the future, so now.
        i.victim_transfer.as_mut().unwrap().transfer_time = Some(at(NOW - 30_000));
        assert_eq!(sim.onward_for(&i, 400, at(NOW))[0].time, Some(at(NOW)));
        // The victim's transfer slightly in the hub's future: not before it.
        i.victim_transfer.as_mut().unwrap().transfer_time = Some(at(NOW + 5_000));
        assert_eq!(
            sim.onward_for(&i, 400, at(NOW))[0].time,
            Some(at(NOW + 5_000))
        );
        assert_eq!(sim.onward_for(&i, 400, at(NOW))[0].amount_fen, 200);
        // 50% of 1 fen is nothing: no transfer.
        assert!(sim.onward_for(&i, 1, at(NOW)).is_empty());
        // Deeper than --onward-depth: the chase ends here.
        i.depth = 2;
        assert!(sim.onward_for(&i, 400, at(NOW)).is_empty());
        let deeper = Simulator::new(None, vec![next_holder(50)], 2, None);
        assert_eq!(deeper.onward_for(&i, 400, at(NOW)).len(), 1);
    }

    #[test]
    fn a_partial_freeze_reports_onward_transfers_too() {
        let mut sim = Simulator::new(None, vec![next_holder(100)], 1, None);
        let Outcome::Frozen(f) = sim.answer(&freeze("I1", "6222020200001237", 1000), at(NOW))
        else {
            panic!("frozen expected")
        };
        assert_eq!(f.onward_transfers.len(), 1);
        assert_eq!(f.onward_transfers[0].amount_fen, 500);
    }

    #[test]
    fn renewals_and_unknown_actions() {
        let mut sim = Simulator::new(None, Vec::new(), 1, None);
        let renew = instruction("I1", pb::Action::RenewFreeze, "6222020200001234", 1000);
        assert!(matches!(sim.answer(&renew, at(NOW)), Outcome::Done(_)));
        let odd = instruction("I2", pb::Action::Unspecified, "6222020200001234", 1000);
        assert!(matches!(sim.answer(&odd, at(NOW)), Outcome::Rejected(_)));
    }

    #[test]
    fn rules_parse() {
        assert_eq!(
            parse_onward_rule("CCB:6217000000009999:Next Holder:100").unwrap(),
            next_holder(100)
        );
        let r = parse_onward_rule("ABC:6228:Zhao: Liu:25%").unwrap();
        assert_eq!((r.name.as_str(), r.percent), ("Zhao: Liu", 25));
        for bad in [
            "",
            "CCB:6217:Name",
            "CCB:6217:Name:0",
            "CCB:6217:Name:101",
            "CCB:6217:Name:x",
            ":6217:N:5",
            "CCB:6217::5",
        ] {
            let err = parse_onward_rule(bad).unwrap_err();
            assert!(err.contains("INST:ACCOUNT:NAME:PERCENT"), "{bad}: {err}");
        }
        assert_eq!(
            parse_earlier_rule("Court: Chaoyang:700").unwrap(),
            EarlierRule {
                authority: "Court: Chaoyang".into(),
                amount_fen: 700
            }
        );
        for bad in ["", "Court", "Court:x", ":5"] {
            let err = parse_earlier_rule(bad).unwrap_err();
            assert!(err.contains("AUTHORITY:AMOUNT_FEN"), "{bad}: {err}");
        }
    }
}
