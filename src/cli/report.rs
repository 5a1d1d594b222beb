//! How `stophub oversight stats | amounts | case | blacklist` show the hub's reports: aligned
//! tables for people, one JSON object per line with `--json` (amounts as integers in fen,
//! times in milliseconds, enums by their short CLI names, as in [`super::render`]).
//!
//! Everything here is pure: proto messages in, text or JSON out.

use serde_json::{Value, json};

use crate::cli::render::{self, action_name, state_name};
use crate::cli::time;
use crate::proto::stophub::oversight::v1::{
    AmountRow, BasisCount, GetBlacklistFiguresResponse, GetCaseResponse, InstitutionStats,
};

/// How a table column is aligned; the header follows its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table for people: a header row, then rows, each column as wide as its widest cell,
/// columns two spaces apart, no trailing spaces.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header and the rows, one line each, joined by newlines.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.columns[i].0.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let header: Vec<String> = self.columns.iter().map(|(n, _)| n.clone()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|cells| {
                let line: Vec<String> = cells
                    .iter()
                    .zip(&self.columns)
                    .zip(&widths)
                    .map(|((cell, (_, align)), &w)| match align {
                        Align::Left => format!("{cell:<w$}"),
                        Align::Right => format!("{cell:>w$}"),
                    })
                    .collect();
                line.join("  ").trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A time in milliseconds for people, to a tenth of the unit: `350 ms`, `1.2 s`, `4.5 min`,
/// `3.0 h`, `2.5 d` (hours up to 48, then days).
pub fn millis(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    // (unit in ms, name, first value, in this unit, shown in the next one)
    const UNITS: [(u64, &str, u64); 4] = [
        (1_000, "s", 60),
        (60_000, "min", 60),
        (3_600_000, "h", 48),
        (86_400_000, "d", u64::MAX),
    ];
    for (unit, name, limit) in UNITS {
        let tenths = (u128::from(ms) * 10 + u128::from(unit / 2)) / u128::from(unit);
        if tenths < u128::from(limit).saturating_mul(10) {
            return format!("{}.{} {name}", tenths / 10, tenths % 10);
        }
    }
    unreachable!("days have no limit")
}

/// An integer with thousands separators: `1,500,000`, `-2,000`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Fen as yuan with two decimals and thousands separators: `15,000.00`, `-0.05`.
pub fn yuan(fen: i64) -> String {
    let abs = fen.unsigned_abs();
    let sign = if fen < 0 { "-" } else { "" };
    // abs / 100 fits an i64 even for i64::MIN.
    let whole = grouped((abs / 100) as i64);
    format!("{sign}{whole}.{:02}", abs % 100)
}

/// An amount in a table cell: `1,500,000 (15,000.00)`, under a `... fen (yuan)` header.
pub fn fen_and_yuan(fen: i64) -> String {
    format!("{} ({})", grouped(fen), yuan(fen))
}

/// The window a report covers, in words: `any time`, `from T`, `before T`, `from T to T`.
pub fn window_text(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> String {
    match (from, to) {
        (None, None) => "any time".to_owned(),
        (Some(f), None) => format!("from {}", time::format(f)),
        (None, Some(t)) => format!("before {}", time::format(t)),
        (Some(f), Some(t)) => format!("from {} to {}", time::format(f), time::format(t)),
    }
}

/// The window as JSON: `{"from": "...", "to": null}`.
pub fn window_json(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> Value {
    let ts = |t: Option<&prost_types::Timestamp>| t.map_or(Value::Null, |t| json!(time::format(t)));
    json!({ "from": ts(from), "to": ts(to) })
}

/// A time-to-acknowledge cell: `-` when nothing was answered (the hub then sends 0).
fn ack_cell(s: &InstitutionStats, ms: u64) -> String {
    if s.answered == 0 {
        "-".to_owned()
    } else {
        millis(ms)
    }
}

const STATS_COLUMNS: [(&str, Align); 10] = [
    ("institution", Align::Left),
    ("received", Align::Right),
    ("answered", Align::Right),
    ("open", Align::Right),
    ("overdue", Align::Right),
    ("late", Align::Right),
    ("ack p50", Align::Right),
    ("ack p95", Align::Right),
    ("ack p99", Align::Right),
    ("ack max", Align::Right),
];

/// One institution's row of the statistics table.
pub fn stats_row(s: &InstitutionStats) -> Vec<String> {
    vec![
        s.institution_code.clone(),
        s.received.to_string(),
        s.answered.to_string(),
        s.open.to_string(),
        s.overdue.to_string(),
        s.answered_late.to_string(),
        ack_cell(s, s.ack_p50_ms),
        ack_cell(s, s.ack_p95_ms),
        ack_cell(s, s.ack_p99_ms),
        ack_cell(s, s.ack_max_ms),
    ]
}

/// The statistics for people: one row per institution (and a `total` row of the counts and
/// the slowest answer when there are several; percentiles do not add up), then the outcomes
/// by institution, action and state.
pub fn stats_tables(institutions: &[InstitutionStats]) -> String {
    let mut table = Table::new(&STATS_COLUMNS);
    for s in institutions {
        table.row(stats_row(s));
    }
    if institutions.len() > 1 {
        let sum = |f: fn(&InstitutionStats) -> u64| institutions.iter().map(f).sum::<u64>();
        let answered = sum(|s| s.answered);
        let max = institutions.iter().map(|s| s.ack_max_ms).max().unwrap_or(0);
        table.row(vec![
            "total".to_owned(),
            sum(|s| s.received).to_string(),
            answered.to_string(),
            sum(|s| s.open).to_string(),
            sum(|s| s.overdue).to_string(),
            sum(|s| s.answered_late).to_string(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            if answered == 0 {
                "-".to_owned()
            } else {
                millis(max)
            },
        ]);
    }
    let mut outcomes = Table::new(&[
        ("institution", Align::Left),
        ("action", Align::Left),
        ("state", Align::Left),
        ("count", Align::Right),
    ]);
    for s in institutions {
        for o in &s.outcomes {
            outcomes.row(vec![
                s.institution_code.clone(),
                action_name(o.action).to_owned(),
                state_name(o.state).to_owned(),
                o.count.to_string(),
            ]);
        }
    }
    format!("{}\n\noutcomes\n{}", table.render(), outcomes.render())
}

/// One institution's statistics as JSON.
pub fn stats_json(s: &InstitutionStats) -> Value {
    json!({
        "institution_code": s.institution_code,
        "received": s.received,
        "answered": s.answered,
        "open": s.open,
        "overdue": s.overdue,
        "answered_late": s.answered_late,
        "ack_p50_ms": s.ack_p50_ms,
        "ack_p95_ms": s.ack_p95_ms,
        "ack_p99_ms": s.ack_p99_ms,
        "ack_max_ms": s.ack_max_ms,
        "outcomes": s.outcomes.iter().map(|o| json!({
            "action": action_name(o.action),
            "state": state_name(o.state),
            "count": o.count,
        })).collect::<Vec<_>>(),
    })
}

/// The amounts for people, with a `total` row when `total` (the table covers every row of
/// the window) and there are several rows.
pub fn amounts_table(key: &str, rows: &[AmountRow], total: bool) -> String {
    let mut table = Table::new(&[
        (key, Align::Left),
        ("instructions", Align::Right),
        ("requested fen (yuan)", Align::Right),
        ("held fen (yuan)", Align::Right),
        ("not held fen (yuan)", Align::Right),
        ("released fen (yuan)", Align::Right),
    ]);
    let cells = |key: &str, n: u64, r: i64, h: i64, nh: i64, rel: i64| {
        vec![
            key.to_owned(),
            n.to_string(),
            fen_and_yuan(r),
            fen_and_yuan(h),
            fen_and_yuan(nh),
            fen_and_yuan(rel),
        ]
    };
    for r in rows {
        table.row(cells(
            &r.key,
            r.instructions,
            r.requested_fen,
            r.held_fen,
            r.not_held_fen,
            r.released_fen,
        ));
    }
    if total && rows.len() > 1 {
        let sum = |f: fn(&AmountRow) -> i64| rows.iter().map(f).fold(0i64, i64::saturating_add);
        table.row(cells(
            "total",
            rows.iter().map(|r| r.instructions).sum(),
            sum(|r| r.requested_fen),
            sum(|r| r.held_fen),
            sum(|r| r.not_held_fen),
            sum(|r| r.released_fen),
        ));
    }
    table.render()
}

/// One amounts row as JSON, amounts in fen.
pub fn amount_json(group_by: &str, r: &AmountRow) -> Value {
    json!({
        "group_by": group_by,
        "key": r.key,
        "instructions": r.instructions,
        "requested_fen": r.requested_fen,
        "held_fen": r.held_fen,
        "not_held_fen": r.not_held_fen,
        "released_fen": r.released_fen,
    })
}

/// The blacklist figures for people: entries in force by legal basis, then the changes in
/// the period.
pub fn blacklist_text(f: &GetBlacklistFiguresResponse, period: &str) -> String {
    let mut bases = Table::new(&[("legal basis", Align::Left), ("in force", Align::Right)]);
    for b in &f.in_force_by_basis {
        bases.row(vec![b.legal_basis.clone(), b.in_force.to_string()]);
    }
    if f.in_force_by_basis.len() > 1 {
        let total: u64 = f.in_force_by_basis.iter().map(|b| b.in_force).sum();
        bases.row(vec!["total".to_owned(), total.to_string()]);
    }
    let in_force = if bases.is_empty() {
        "no entries in force".to_owned()
    } else {
        bases.render()
    };
    let changes = [
        ("listings", f.listings),
        ("extensions", f.extensions),
        ("delistings", f.delistings),
        ("lapses", f.lapses),
        ("appeals recorded", f.appeals_recorded),
        ("appeals upheld", f.appeals_upheld),
        ("appeals dismissed", f.appeals_dismissed),
    ];
    let width = changes
        .iter()
        .map(|(_, n)| n.to_string().len())
        .max()
        .unwrap_or(1);
    let changes: Vec<String> = changes
        .iter()
        .map(|(label, n)| format!("{label:<17}  {n:>width$}"))
        .collect();
    format!(
        "in force now, by legal basis\n{in_force}\n\nrecorded {period}\n{}",
        changes.join("\n")
    )
}

/// The blacklist figures as one JSON object.
pub fn blacklist_json(f: &GetBlacklistFiguresResponse) -> Value {
    let basis = |b: &BasisCount| json!({ "legal_basis": b.legal_basis, "in_force": b.in_force });
    json!({
        "in_force_by_basis": f.in_force_by_basis.iter().map(basis).collect::<Vec<_>>(),
        "listings": f.listings,
        "extensions": f.extensions,
        "delistings": f.delistings,
        "lapses": f.lapses,
        "appeals_recorded": f.appeals_recorded,
        "appeals_upheld": f.appeals_upheld,
        "appeals_dismissed": f.appeals_dismissed,
    })
}

/// One case for people: its notices, instructions (as `oversight list` shows them), the
/// fund-flow graph (as `oversight graph` shows it) and its audit records.
pub fn case_text(agency: &str, case_reference: &str, c: &GetCaseResponse) -> String {
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let none = || "  (none)".to_owned();
    let mut sections = vec![format!("case {agency}/{case_reference}")];
    sections.push(format!("notices ({})", c.notice_ids.len()));
    sections.push(if c.notice_ids.is_empty() {
        none()
    } else {
        indent(&c.notice_ids.join("\n"))
    });
    sections.push(format!("instructions ({})", c.instructions.len()));
    sections.push(if c.instructions.is_empty() {
        none()
    } else {
        indent(
            &c.instructions
                .iter()
                .map(render::instruction_line)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    });
    sections.push("fund flow".to_owned());
    sections.push(
        c.graph
            .as_ref()
            .map_or_else(none, |g| indent(&render::graph_lines(g))),
    );
    sections.push(format!("audit ({} records)", c.audit.len()));
    sections.push(if c.audit.is_empty() {
        none()
    } else {
        indent(
            &c.audit
                .iter()
                .map(super::audit_line)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    });
    sections.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::stophub::common::v1 as pb;
    use crate::proto::stophub::oversight::v1::OutcomeCount;

    #[test]
    fn times_are_shown_to_a_tenth_of_their_unit() {
        for (ms, text) in [
            (0, "0 ms"),
            (350, "350 ms"),
            (999, "999 ms"),
            (1_000, "1.0 s"),
            (1_234, "1.2 s"),
            (1_250, "1.3 s"),
            (59_949, "59.9 s"),
            (59_950, "1.0 min"),
            (270_000, "4.5 min"),
            (3_600_000, "1.0 h"),
            (10_800_000, "3.0 h"),
            (47 * 3_600_000, "47.0 h"),
            (48 * 3_600_000, "2.0 d"),
            (216_000_000, "2.5 d"),
        ] {
            assert_eq!(millis(ms), text, "{ms}");
        }
        assert!(millis(u64::MAX).ends_with(" d"));
    }

    #[test]
    fn money_is_grouped_and_shown_in_yuan_too() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_500_000, "1,500,000"),
            (-2_000, "-2,000"),
            (123_456_789, "123,456,789"),
        ] {
            assert_eq!(grouped(n), text, "{n}");
        }
        assert_eq!(grouped(i64::MIN), "-9,223,372,036,854,775,808");
        for (fen, text) in [
            (0, "0.00"),
            (5, "0.05"),
            (-5, "-0.05"),
            (100, "1.00"),
            (1_500_000, "15,000.00"),
            (123_456_789, "1,234,567.89"),
        ] {
            assert_eq!(yuan(fen), text, "{fen}");
        }
        assert_eq!(yuan(i64::MIN), "-92,233,720,368,547,758.08");
        assert_eq!(fen_and_yuan(1_500_000), "1,500,000 (15,000.00)");
    }

    #[test]
    fn tables_align_their_columns() {
        let mut t = Table::new(&[
            ("name", Align::Left),
            ("n", Align::Right),
            ("note", Align::Left),
        ]);
        t.row(vec!["a".into(), "10".into(), "x".into()]);
        t.row(vec!["long name".into(), "7".into()]);
        assert_eq!(
            t.render(),
            "name        n  note\na          10  x\nlong name   7"
        );
        assert!(!t.is_empty());
        assert_eq!(Table::new(&[("only", Align::Right)]).render(), "only");
    }

    fn stats(code: &str, answered: u64) -> InstitutionStats {
        InstitutionStats {
            institution_code: code.into(),
            received: 3,
            answered,
            open: 3 - answered,
            overdue: 1,
            answered_late: 0,
            ack_p50_ms: 350,
            ack_p95_ms: 1_234,
            ack_p99_ms: 1_234,
            ack_max_ms: if answered == 0 { 0 } else { 90_000 },
            outcomes: vec![OutcomeCount {
                action: pb::Action::StopPayment as i32,
                state: pb::InstructionState::Executed as i32,
                count: answered,
            }],
        }
    }

    #[test]
    fn a_stats_row_shows_counts_and_times_to_acknowledge() {
        assert_eq!(
            stats_row(&stats("ICBC", 2)),
            [
                "ICBC", "3", "2", "1", "1", "0", "350 ms", "1.2 s", "1.2 s", "1.5 min"
            ]
        );
        // Nothing answered: no times, not zeros.
        let none = stats_row(&stats("CCB", 0));
        assert_eq!(&none[6..], ["-", "-", "-", "-"]);
        let text = stats_tables(&[stats("CCB", 0), stats("ICBC", 2)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "institution  received  answered  open  overdue  late  ack p50  ack p95  ack p99  ack max"
        );
        assert_eq!(
            lines[2],
            "ICBC                3         2     1        1     0   350 ms    1.2 s    1.2 s  1.5 min"
        );
        assert_eq!(
            lines[3],
            "total               6         2     4        2     0        -        -        -  1.5 min"
        );
        assert_eq!(lines[5], "outcomes");
        assert_eq!(lines[6], "institution  action        state     count");
        assert_eq!(lines[8], "ICBC         stop-payment  executed      2");
        // One institution: no total.
        assert!(!stats_tables(&[stats("ICBC", 2)]).contains("total"));
        let v = stats_json(&stats("ICBC", 2));
        assert_eq!(v["ack_p95_ms"], 1_234);
        assert_eq!(v["outcomes"][0]["state"], "executed");
        assert_eq!(v["outcomes"][0]["action"], "stop-payment");
    }

    #[test]
    fn amounts_show_fen_and_yuan_and_a_total() {
        let row = |key: &str, requested: i64, held: i64| AmountRow {
            key: key.into(),
            requested_fen: requested,
            held_fen: held,
            not_held_fen: requested - held,
            released_fen: 0,
            instructions: 1,
        };
        let rows = [
            row("CCB", 1_500_000, 1_500_000),
            row("ICBC", 3_000_000, 1_500_000),
        ];
        let text = amounts_table("institution", &rows, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            "institution  instructions   requested fen (yuan)        held fen (yuan)    not held fen (yuan)  released fen (yuan)"
        );
        assert!(
            lines[2].starts_with(
                "ICBC                    1  3,000,000 (30,000.00)  1,500,000 (15,000.00)"
            ),
            "{text}"
        );
        assert!(
            lines[3].starts_with("total                   2  4,500,000 (45,000.00)"),
            "{text}"
        );
        assert_eq!(amounts_table("day", &rows, false).lines().count(), 3);
        let v = amount_json("institution", &rows[1]);
        assert_eq!(
            (v["key"].as_str(), v["not_held_fen"].as_i64()),
            (Some("ICBC"), Some(1_500_000))
        );
    }

    #[test]
    fn blacklist_figures_show_bases_then_changes() {
        let f = GetBlacklistFiguresResponse {
            in_force_by_basis: vec![BasisCount {
                legal_basis: "PBOC-2019-ACCOUNT-TRADING".into(),
                in_force: 1,
            }],
            listings: 1,
            appeals_recorded: 2,
            ..Default::default()
        };
        let text = blacklist_text(&f, "any time");
        assert!(text.starts_with(
            "in force now, by legal basis\nlegal basis                in force\nPBOC-2019-ACCOUNT-TRADING         1\n\nrecorded any time\n"
        ), "{text}");
        assert!(text.contains("\nlistings           1\n"), "{text}");
        assert!(text.ends_with("appeals dismissed  0"), "{text}");
        assert!(
            blacklist_text(&GetBlacklistFiguresResponse::default(), "x")
                .contains("no entries in force")
        );
        assert_eq!(blacklist_json(&f)["in_force_by_basis"][0]["in_force"], 1);
        assert_eq!(window_text(None, None), "any time");
        let t = time::from_millis(0);
        assert_eq!(window_text(Some(&t), None), "from 1970-01-01T00:00:00Z");
        assert_eq!(window_json(None, Some(&t))["to"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_case_has_four_sections() {
        let empty = GetCaseResponse::default();
        let text = case_text("PSB-SZ", "SZ-1", &empty);
        assert_eq!(
            text,
            "case PSB-SZ/SZ-1\nnotices (0)\n  (none)\ninstructions (0)\n  (none)\nfund flow\n  (none)\naudit (0 records)\n  (none)"
        );
        let c = GetCaseResponse {
            notice_ids: vec!["N1".into()],
            instructions: vec![pb::Instruction {
                instruction_id: "I2".into(),
                ..Default::default()
            }],
            graph: Some(pb::CaseGraph {
                police_agency: "PSB-SZ".into(),
                case_reference: "SZ-1".into(),
                ..Default::default()
            }),
            audit: vec![crate::proto::stophub::oversight::v1::AuditRecord {
                seq: 7,
                actor: "police:PSB-SZ".into(),
                action: "submit_notice".into(),
                outcome: "ok".into(),
                ..Default::default()
            }],
        };
        let text = case_text("PSB-SZ", "SZ-1", &c);
        assert!(
            text.contains("notices (1)\n  N1\ninstructions (1)\n  I2 "),
            "{text}"
        );
        assert!(
            text.contains("fund flow\n  case SZ-1  agency PSB-SZ  0 account(s)"),
            "{text}"
        );
        assert!(text.contains("audit (1 records)\n  #7 "), "{text}");
    }
}
