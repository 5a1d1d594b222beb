//! Following the money: which next-level stops an answer leads to, and for how much.

use std::collections::HashMap;

use super::*;
use crate::domain::ids::{AccountNumber, Timestamp};
use crate::domain::instruction::{Acknowledgement, Outcome};

/// The parent stop's id, institution and account.
const PARENT: &str = "ins-1";
const PARENT_BANK: &str = "ICBC";
const PARENT_ACCOUNT: &str = "622202123456";
/// 2026-03-10T00:00Z: the parent was answered then; transfers are minutes before.
const T: i64 = 1_773_100_800_000;
const MAX_STOPS: usize = 2;

/// Registered institutions, holders and stop counts, as the hub's store would report them.
struct World {
    kinds: HashMap<String, AccountKind>,
    holders: HashMap<(String, String), String>,
    stops: HashMap<(String, String), usize>,
}

fn key(institution: &str, account: &str) -> (String, String) {
    (institution.to_owned(), account.to_owned())
}

impl World {
    /// ICBC, CMB and ABC hold bank accounts; ALIPAY and TENPAY payment accounts. "NOPE" is not
    /// registered.
    fn new() -> Self {
        let kinds = [
            ("ICBC", AccountKind::Bank),
            ("CMB", AccountKind::Bank),
            ("ABC", AccountKind::Bank),
            ("ALIPAY", AccountKind::Payment),
            ("TENPAY", AccountKind::Payment),
        ];
        Self {
            kinds: kinds.into_iter().map(|(c, k)| (c.to_owned(), k)).collect(),
            holders: HashMap::new(),
            stops: HashMap::new(),
        }
    }

    fn held_by(mut self, institution: &str, account: &str, instruction: &str) -> Self {
        self.holders
            .insert(key(institution, account), instruction.to_owned());
        self
    }

    fn stopped(mut self, institution: &str, account: &str, count: usize) -> Self {
        self.stops.insert(key(institution, account), count);
        self
    }
}

impl FundsContext for World {
    fn institution_kind(&self, code: &str) -> Option<AccountKind> {
        self.kinds.get(code).copied()
    }
    fn holder_in_case(&self, institution: &str, account: &str) -> Option<String> {
        self.holders.get(&key(institution, account)).cloned()
    }
    fn stops_in_case(&self, institution: &str, account: &str) -> usize {
        self.stops
            .get(&key(institution, account))
            .copied()
            .unwrap_or(0)
    }
}

/// A stop of `requested` fen at depth `depth` that follows the money to `follow_depth`, answered
/// with `held` fen held.
fn parent(requested: i64, held: i64, depth: u8, follow_depth: u8) -> InstructionRecord {
    let all = held == requested;
    let state = if all { "Executed" } else { "Partial" };
    let fixture = serde_json::json!({
        "instruction_id": PARENT,
        "notice_id": "ntc-1",
        "case_reference": "CASE-2026-0001",
        "police_agency": "PSB-SH",
        "action": "StopPayment",
        "account": {
            "institution_code": PARENT_BANK,
            "account_number": PARENT_ACCOUNT,
            "account_name": "Zhang San",
            "account_kind": "Bank",
            "amount": requested,
        },
        "victim": {
            "institution_code": "CMB",
            "account_number": "621483000001",
            "account_name": "Li Si",
            "currency": "CNY",
            "amount": requested,
            "transfer_time": T - 3_600_000,
            "transaction_reference": "TX-0001",
        },
        "state": state,
        "sequence": 1,
        "created_at": T - 60_000,
        "answer_due_at": T + 240_000,
        "updated_at": T,
        "version": 3,
        "depth": depth,
        "follow_depth": follow_depth,
    });
    let mut rec: InstructionRecord =
        serde_json::from_value(fixture).expect("a well-formed parent record");
    let (held, executed_at) = (Fen::new_unchecked(held), Timestamp::from_millis(T));
    let onward = Vec::new();
    let outcome = if all {
        Outcome::Executed {
            held,
            balance: held,
            executed_at,
            onward,
        }
    } else {
        Outcome::Partial {
            held,
            balance: held,
            executed_at,
            onward,
        }
    };
    rec.ack = Some(Acknowledgement {
        outcome,
        received_at: executed_at,
        late_by_ms: 0,
        discrepancy_ms: 0,
    });
    rec
}

/// A transfer of `amount` fen into `account` at `institution`, `minutes_before` the answer.
fn transfer(institution: &str, account: &str, amount: i64, minutes_before: i64) -> OnwardTransfer {
    OnwardTransfer {
        institution_code: institution.to_owned(),
        account_number: AccountNumber::parse(account).expect("a valid account number"),
        account_name: format!("holder of {account}"),
        amount: Fen::new_unchecked(amount),
        time: Timestamp::from_millis(T - minutes_before * 60_000),
        reference: format!("TX-{account}-{minutes_before}"),
    }
}

/// The plan for a level-1 stop of `requested` fen that held `held` and follows the money one
/// level down, in `world`.
fn follow(world: &World, requested: i64, held: i64, transfers: &[OnwardTransfer]) -> Plan {
    plan(&parent(requested, held, 1, 2), transfers, MAX_STOPS, world)
}

fn results(plan: &Plan) -> Vec<HopResult> {
    plan.hops.iter().map(|h| h.result).collect()
}

fn amounts(plan: &Plan) -> Vec<i64> {
    plan.children.iter().map(|c| c.amount.get()).collect()
}

/// Three transfers into three different registered accounts, oldest first.
fn three_transfers() -> Vec<OnwardTransfer> {
    vec![
        transfer("CMB", "621483000002", 3_000, 30),
        transfer("ALIPAY", "208800000003", 2_000, 20),
        transfer("ABC", "622848000004", 1_000, 10),
    ]
}

#[test]
fn nothing_is_followed_when_following_was_not_asked_for() {
    let plan = plan(
        &parent(10_000, 0, 1, 0),
        &three_transfers(),
        MAX_STOPS,
        &World::new(),
    );
    assert_eq!(results(&plan), [HopResult::NotRequested; 3]);
    assert!(plan.children.is_empty());
    assert!(
        plan.hops
            .iter()
            .all(|h| h.followed == 0 && h.instruction_id.is_none())
    );
}

#[test]
fn the_money_is_followed_down_to_the_depth_asked_for() {
    // (parent's depth, follow_depth, every hop's result)
    let cases = [
        (1, 0, HopResult::NotRequested),
        (3, 0, HopResult::NotRequested),
        (1, 1, HopResult::DepthLimit),
        (2, 2, HopResult::DepthLimit),
        (3, 2, HopResult::DepthLimit),
        (1, 2, HopResult::Followed),
        (2, 3, HopResult::Followed),
    ];
    for (depth, follow_depth, result) in cases {
        let plan = plan(
            &parent(10_000, 0, depth, follow_depth),
            &three_transfers(),
            MAX_STOPS,
            &World::new(),
        );
        assert_eq!(
            results(&plan),
            [result; 3],
            "depth {depth} of {follow_depth}"
        );
        let followed = result == HopResult::Followed;
        assert_eq!(
            plan.children.len(),
            if followed { 3 } else { 0 },
            "depth {depth} of {follow_depth}"
        );
    }
}

#[test]
fn a_transfer_to_an_unregistered_institution_is_unreachable_and_costs_nothing() {
    let transfers = [
        transfer("NOPE", "600000000001", 9_000, 30),
        transfer("CMB", "621483000002", 9_000, 20),
    ];
    let plan = follow(&World::new(), 10_000, 0, &transfers);
    assert_eq!(
        results(&plan),
        [HopResult::Unreachable, HopResult::Followed]
    );
    assert_eq!(plan.hops[0].instruction_id, None);
    assert_eq!(amounts(&plan), [9_000]);
}

#[test]
fn money_sent_back_into_the_parent_account_is_a_cycle_to_the_parent() {
    let transfers = [
        transfer(PARENT_BANK, PARENT_ACCOUNT, 4_000, 30),
        // The same number at another institution is another account.
        transfer("CMB", PARENT_ACCOUNT, 4_000, 20),
    ];
    let plan = follow(&World::new(), 10_000, 0, &transfers);
    assert_eq!(results(&plan), [HopResult::Cycle, HopResult::Followed]);
    assert_eq!(plan.hops[0].instruction_id.as_deref(), Some(PARENT));
    assert_eq!(plan.hops[0].followed, 0);
    assert_eq!(amounts(&plan), [4_000]);
    assert_eq!(plan.children[0].transfer.institution_code, "CMB");
}

#[test]
fn an_account_already_held_in_the_case_is_a_cycle_to_its_holder() {
    let world = World::new().held_by("CMB", "621483000002", "ins-7");
    let plan = follow(&world, 10_000, 0, &three_transfers());
    assert_eq!(
        results(&plan),
        [HopResult::Cycle, HopResult::Followed, HopResult::Followed]
    );
    assert_eq!(plan.hops[0].instruction_id.as_deref(), Some("ins-7"));
    assert_eq!(amounts(&plan), [2_000, 1_000]);
}

#[test]
fn two_transfers_into_one_new_account_make_one_stop() {
    let transfers = [
        transfer("CMB", "621483000002", 2_000, 30),
        transfer("ABC", "622848000004", 1_000, 25),
        transfer("CMB", "621483000002", 3_000, 20),
    ];
    let plan = follow(&World::new(), 10_000, 0, &transfers);
    assert_eq!(
        results(&plan),
        [
            HopResult::Followed,
            HopResult::Followed,
            HopResult::Followed
        ]
    );
    assert_eq!(plan.children.len(), 2);
    let first = &plan.children[0];
    assert_eq!((first.hop, first.also.as_slice()), (0, &[2][..]));
    assert!(plan.children[1].also.is_empty());
    // The second hop points at the same new stop once it has an id; the plan leaves it empty.
    assert_eq!(
        (plan.hops[2].instruction_id.as_ref(), plan.hops[2].followed),
        (None, 3_000)
    );
    // The one stop asks for what flowed in on both transfers.
    assert_eq!(amounts(&plan), [5_000, 1_000]);
}

#[test]
fn an_account_with_the_most_stops_allowed_is_not_stopped_again() {
    for (earlier_stops, result) in [
        (0, HopResult::Followed),
        (1, HopResult::Followed),
        (2, HopResult::StopLimit),
        (3, HopResult::StopLimit),
    ] {
        let world = World::new().stopped("ALIPAY", "208800000003", earlier_stops);
        let plan = follow(&world, 10_000, 0, &three_transfers());
        assert_eq!(plan.hops[1].result, result, "{earlier_stops} earlier stops");
        let stopped = plan
            .children
            .iter()
            .any(|c| c.transfer.institution_code == "ALIPAY");
        assert_eq!(
            stopped,
            result == HopResult::Followed,
            "{earlier_stops} earlier stops"
        );
    }
}

#[test]
fn only_what_left_the_account_is_chased_oldest_transfer_first() {
    // 100,000 requested, 30,000 held: at most 70,000 left the account.
    let transfers = [
        transfer("ABC", "622848000004", 50_000, 10),
        transfer("CMB", "621483000002", 40_000, 40),
        transfer("NOPE", "600000000001", 99_000, 35),
        transfer("ALIPAY", "208800000003", 20_000, 30),
        transfer("TENPAY", "130000000005", 10_000, 5),
    ];
    let plan = follow(&World::new(), 100_000, 30_000, &transfers);
    let order: Vec<&str> = plan
        .hops
        .iter()
        .map(|h| h.transfer.institution_code.as_str())
        .collect();
    assert_eq!(order, ["CMB", "NOPE", "ALIPAY", "ABC", "TENPAY"]);
    assert_eq!(
        results(&plan),
        [
            HopResult::Followed,
            HopResult::Unreachable,
            HopResult::Followed,
            HopResult::Followed,
            HopResult::NothingLeft
        ]
    );
    // The third followed transfer carried 50,000 but only 10,000 was left.
    assert_eq!(amounts(&plan), [40_000, 20_000, 10_000]);
    assert_eq!(
        plan.hops.iter().map(|h| h.followed).collect::<Vec<_>>(),
        [40_000, 0, 20_000, 10_000, 0]
    );
    assert_eq!(
        plan.children.iter().map(|c| c.hop).collect::<Vec<_>>(),
        [0, 2, 3]
    );
}

#[test]
fn nothing_is_chased_when_the_parent_held_everything() {
    let plan = follow(&World::new(), 10_000, 10_000, &three_transfers());
    assert_eq!(results(&plan), [HopResult::NothingLeft; 3]);
    assert!(plan.children.is_empty());
}

#[test]
fn a_child_stop_is_of_the_kind_its_institution_holds() {
    let plan = follow(&World::new(), 10_000, 0, &three_transfers());
    let kinds: Vec<AccountKind> = plan.children.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [AccountKind::Bank, AccountKind::Payment, AccountKind::Bank]
    );
    for child in &plan.children {
        let hop = &plan.hops[child.hop];
        assert_eq!(
            (hop.result, hop.followed, &hop.transfer),
            (HopResult::Followed, child.amount.get(), &child.transfer)
        );
        assert_eq!(
            hop.instruction_id, None,
            "filled in once the child stop is created"
        );
    }
}

/// A small deterministic generator (64-bit LCG), so the property test needs no crate.
struct Lcg(u64);

impl Lcg {
    /// A number in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Checks every invariant of a plan; returns what broke.
fn violations(
    parent: &InstructionRecord,
    transfers: &[OnwardTransfer],
    world: &World,
    plan: &Plan,
) -> Vec<String> {
    let mut broken = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            broken.push(what.to_owned());
        }
    };
    let requested = parent.account.amount.get();
    let held = parent.held();
    let asked: i64 = plan.children.iter().map(|c| c.amount.get()).sum();
    check(
        asked + held <= requested,
        "children and held exceed the amount requested",
    );
    check(plan.hops.len() == transfers.len(), "one hop per transfer");
    check(
        plan.hops
            .windows(2)
            .all(|w| w[0].transfer.time <= w[1].transfer.time),
        "hops in time order",
    );
    check(
        plan.hops.iter().all(|h| transfers.contains(&h.transfer)),
        "hops are the transfers",
    );
    let followed = plan
        .hops
        .iter()
        .filter(|h| h.result == HopResult::Followed)
        .count();
    let folded: usize = plan
        .children
        .iter()
        .map(|c| {
            c.also
                .iter()
                .filter(|&&i| plan.hops[i].result == HopResult::Followed)
                .count()
        })
        .sum();
    check(
        followed == plan.children.len() + folded,
        "one child per followed hop, besides hops folded into a child",
    );
    check(
        plan.hops
            .iter()
            .all(|h| (h.result == HopResult::Followed) == (h.followed > 0)),
        "only followed hops carry an amount",
    );
    if plan.hops.iter().any(|h| h.result == HopResult::NothingLeft) {
        check(
            asked + held == requested,
            "NOTHING_LEFT while something was left",
        );
    }
    if parent.follow_depth == 0 {
        check(
            plan.hops
                .iter()
                .all(|h| h.result == HopResult::NotRequested),
            "not requested",
        );
    } else if parent.depth >= parent.follow_depth {
        check(
            plan.hops.iter().all(|h| h.result == HopResult::DepthLimit),
            "depth limit",
        );
    }
    let mut stopped = Vec::new();
    for child in &plan.children {
        let (institution, account) = (
            &child.transfer.institution_code,
            child.transfer.account_number.as_str(),
        );
        // A child asks for what its own hops followed: each within its transfer.
        let folded: i64 = std::iter::once(child.hop)
            .chain(child.also.iter().copied())
            .map(|i| plan.hops[i].followed)
            .sum();
        check(
            child.amount.get() > 0 && child.amount.get() == folded,
            "child amount is what its hops followed",
        );
        let hop = &plan.hops[child.hop];
        check(
            hop.result == HopResult::Followed
                && hop.followed > 0
                && hop.followed <= hop.transfer.amount.get(),
            "child's hop followed within its transfer",
        );
        check(
            hop.transfer == child.transfer,
            "child's hop is its transfer",
        );
        check(
            world.institution_kind(institution) == Some(child.kind),
            "child kind from its institution",
        );
        check(
            world.holder_in_case(institution, account).is_none(),
            "a held account stopped again",
        );
        check(
            world.stops_in_case(institution, account) < MAX_STOPS,
            "stop limit exceeded",
        );
        check(
            !(institution == PARENT_BANK && account == PARENT_ACCOUNT),
            "the parent's own account stopped",
        );
        check(
            !stopped.contains(&(institution, account)),
            "one account stopped twice",
        );
        stopped.push((institution, account));
        for &i in &child.also {
            let other = &plan.hops[i];
            check(
                i > child.hop
                    && matches!(other.result, HopResult::Followed | HopResult::NothingLeft)
                    && other.followed <= other.transfer.amount.get(),
                "also points at a later hop into the same account",
            );
            check(
                other.transfer.institution_code == *institution,
                "also: same institution",
            );
            check(
                other.transfer.account_number.as_str() == account,
                "also: same account",
            );
        }
    }
    broken
}

#[test]
fn no_plan_asks_for_more_than_left_the_account() {
    let institutions = ["ICBC", "CMB", "ALIPAY", "NOPE"];
    let accounts = [
        PARENT_ACCOUNT,
        "621483000002",
        "208800000003",
        "622848000004",
    ];
    let mut rng = Lcg(2026);
    for scenario in 0..500 {
        let requested = 1 + rng.below(200_000) as i64;
        let held = rng.below(requested as u64 + 1) as i64;
        let (depth, follow_depth) = (1 + rng.below(3) as u8, rng.below(4) as u8);
        let mut world = World::new();
        for _ in 0..rng.below(3) {
            world = world.held_by(rng.pick(&institutions), rng.pick(&accounts), "ins-h");
        }
        for _ in 0..rng.below(3) {
            world = world.stopped(
                rng.pick(&institutions),
                rng.pick(&accounts),
                rng.below(4) as usize,
            );
        }
        let transfers: Vec<OnwardTransfer> = (0..rng.below(9))
            .map(|_| {
                let amount = 1 + rng.below(100_000) as i64;
                transfer(
                    rng.pick(&institutions),
                    rng.pick(&accounts),
                    amount,
                    rng.below(20) as i64,
                )
            })
            .collect();
        let upper = parent(requested, held, depth, follow_depth);
        let plan = plan(&upper, &transfers, MAX_STOPS, &world);
        let broken = violations(&upper, &transfers, &world, &plan);
        assert!(
            broken.is_empty(),
            "scenario {scenario}: {broken:?}\ntransfers {transfers:#?}\nplan {plan:#?}"
        );
    }
}
