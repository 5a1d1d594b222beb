//! The rendering's tests: names, JSON shapes and human lines.

use super::*;

#[test]
fn state_names_round_trip() {
    for s in StateName::value_variants() {
        let cli = s.to_possible_value().map(|v| v.get_name().to_owned());
        assert_eq!(cli.as_deref(), Some(state_name(s.to_proto() as i32)));
    }
    assert_eq!(
        StateName::from_str("account-not-found", false),
        Ok(StateName::AccountNotFound)
    );
    assert!(StateName::from_str("done", false).is_err());
    assert_eq!(state_name(99), "unspecified");
}

#[test]
fn document_types_parse_into_the_proto_enum() {
    for (name, proto) in [
        ("resident-id", pb::DocumentType::ResidentId),
        ("passport", pb::DocumentType::Passport),
        ("uscc", pb::DocumentType::UnifiedSocialCreditCode),
        ("USCC", pb::DocumentType::UnifiedSocialCreditCode),
        (" Resident-ID ", pb::DocumentType::ResidentId),
    ] {
        let parsed = DocTypeName::parse(name).unwrap();
        assert_eq!(parsed.to_proto(), proto, "{name}");
        assert_eq!(DocTypeName::from_proto(proto as i32), Some(parsed));
        assert_eq!(doc_type_name(proto as i32), name.trim().to_lowercase());
    }
    for bad in ["", "id", "resident_id", "usc", "unified-social-credit-code"] {
        let err = DocTypeName::parse(bad).unwrap_err();
        assert!(
            err.contains("resident-id, passport or uscc"),
            "{bad}: {err}"
        );
    }
    // The command line names are the output names.
    for d in DocTypeName::value_variants() {
        let cli = d.to_possible_value().map(|v| v.get_name().to_owned());
        assert_eq!(cli.as_deref(), Some(d.name()));
    }
    assert_eq!(DocTypeName::from_proto(0), None);
    assert_eq!(doc_type_name(7), "unspecified");
}

#[test]
fn blacklist_entries_show_everything() {
    let e = pb::BlacklistEntry {
        subject: Some(pb::SubjectRef {
            document_type: pb::DocumentType::ResidentId as i32,
            document_number: "11010519491231002X".into(),
        }),
        subject_name: "Zhang San".into(),
        state: pb::ListingState::Listed as i32,
        legal_basis: "B5".into(),
        basis_table_version: "2024-1".into(),
        effects: Some(pb::Effects {
            bank_non_counter_suspended: true,
            payment_accounts_suspended: false,
            no_new_accounts: true,
        }),
        listed_by: "PSB-SZ".into(),
        case_reference: "SZ-1".into(),
        listed_at: Some(time::from_millis(0)),
        consecutive_since: Some(time::from_millis(0)),
        expires_at: Some(time::from_millis(86_400_000)),
        version: 3,
        removal_reason: String::new(),
    };
    let text = entry_detail(&e);
    for needle in [
        "subject            resident-id 11010519491231002X (Zhang San)",
        "state              listed",
        "legal basis        B5 (basis table 2024-1)",
        "effects            non-counter suspended, no new accounts",
        "listed by          PSB-SZ, case SZ-1",
        "consecutive since  1970-01-01T00:00:00Z",
        "expires at         1970-01-02T00:00:00Z",
        "version            3",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    assert!(!text.contains("removal reason"));
    let v = entry_json(&e);
    assert_eq!(v["subject"]["document_type"], "resident-id");
    assert_eq!(v["state"], "listed");
    assert_eq!(v["effects"]["payment_accounts_suspended"], false);
    assert_eq!(v["expires_at"], "1970-01-02T00:00:00Z");
    assert_eq!(v["removal_reason"], Value::Null);
    let delisted = pb::BlacklistEntry {
        state: pb::ListingState::AppealUpheld as i32,
        removal_reason: "identity stolen".into(),
        ..e
    };
    assert!(entry_detail(&delisted).contains("removal reason     identity stolen"));
    assert_eq!(entry_json(&delisted)["state"], "appeal-upheld");
    assert_eq!(effects_text(None), "none");
    assert_eq!(effects_text(Some(&pb::Effects::default())), "none");
}

#[test]
fn appeals_show_the_decision_once_made() {
    let mut a = Appeal {
        appeal_id: "A1".into(),
        grounds: "stolen card".into(),
        state: AppealState::Pending as i32,
        recorded_by: "PBOC".into(),
        recorded_at: Some(time::from_millis(0)),
        ..Default::default()
    };
    assert!(!appeal_detail(&a).contains("decided"));
    assert_eq!(appeal_json(&a)["decided_at"], Value::Null);
    a.state = AppealState::Dismissed as i32;
    a.decided_by = "PBOC".into();
    a.decision_reason = "no evidence".into();
    let text = appeal_detail(&a);
    assert!(text.contains("state              dismissed"), "{text}");
    assert!(text.contains("decision reason    no evidence"), "{text}");
    assert_eq!(appeal_json(&a)["state"], "dismissed");
}

#[test]
fn instruction_json_uses_short_names_and_rfc3339() {
    let i = pb::Instruction {
        instruction_id: "I1".into(),
        state: pb::InstructionState::Executed as i32,
        action: pb::Action::StopPayment as i32,
        created_at: Some(time::from_millis(0)),
        acknowledgement: Some(pb::Acknowledgement {
            outcome: Some(Outcome::Mismatch(pb::Mismatch {
                fields: vec![
                    pb::MismatchField::AccountName as i32,
                    pb::MismatchField::Amount as i32,
                ],
                detail: String::new(),
            })),
            received_at: None,
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = instruction_json(&i);
    assert_eq!(v["state"], "executed");
    assert_eq!(v["action"], "stop-payment");
    assert_eq!(v["created_at"], "1970-01-01T00:00:00Z");
    assert_eq!(v["delivered_at"], Value::Null);
    assert_eq!(v["acknowledgement"]["outcome"], "mismatch");
    assert_eq!(v["acknowledgement"]["fields"], json!(["name", "amount"]));
    assert!(instruction_line(&i).contains("fields name,amount"));
}

fn transfer() -> pb::OnwardTransfer {
    pb::OnwardTransfer {
        institution_code: "CCB".into(),
        account_number: "6217000000009999".into(),
        account_name: "Next Holder".into(),
        amount_fen: 1500,
        time: Some(time::from_millis(60_000)),
        transaction_reference: "SIM-I2-1".into(),
    }
}

fn chased() -> pb::Instruction {
    pb::Instruction {
        instruction_id: "I2".into(),
        state: pb::InstructionState::Partial as i32,
        action: pb::Action::StopPayment as i32,
        depth: 1,
        effective_until: Some(time::from_millis(172_800_000)),
        acknowledgement: Some(pb::Acknowledgement {
            outcome: Some(Outcome::Partial(pb::Partial {
                amount_held_fen: 1500,
                balance_fen: 0,
                executed_at: Some(time::from_millis(0)),
                onward_transfers: vec![transfer()],
            })),
            late_by_ms: 2_500,
            ..Default::default()
        }),
        hops: vec![
            pb::Hop {
                transfer: Some(transfer()),
                result: pb::HopResult::Followed as i32,
                child_instruction_id: "I3".into(),
                followed_amount_fen: 1500,
            },
            pb::Hop {
                transfer: Some(transfer()),
                result: pb::HopResult::Unreachable as i32,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

#[test]
fn lifecycle_notes_and_hops_are_shown() {
    let i = chased();
    let line = instruction_line(&i);
    assert!(line.contains("partial           stop-payment"), "{line}");
    assert!(
        line.ends_with("[until 1970-01-03T00:00:00Z; answered late by 2 s]"),
        "{line}"
    );
    let with_hops = instruction_with_hops(&i, 2);
    let lines: Vec<&str> = with_hops.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[1],
        "  hop -> CCB 6217000000009999 (Next Holder) 1500 fen at 1970-01-01T00:01:00Z ref SIM-I2-1  followed: I3 asks 1500 fen"
    );
    assert!(lines[2].ends_with("  unreachable"), "{}", lines[2]);
    // A released stop keeps its old expiry; it is not shown as in force.
    let released = pb::Instruction {
        state: pb::InstructionState::Released as i32,
        ..i.clone()
    };
    assert!(!instruction_line(&released).contains("until"));
    let lapsed = pb::Instruction {
        state: pb::InstructionState::Lapsed as i32,
        ..i.clone()
    };
    assert!(instruction_line(&lapsed).contains("lapsed at 1970-01-03T00:00:00Z"));
    // Unanswered with notes: the notes two spaces after the amount, as after an answer.
    let overdue = pb::Instruction {
        state: pb::InstructionState::Overdue as i32,
        acknowledgement: None,
        effective_until: None,
        overdue_at: Some(time::from_millis(0)),
        ..i.clone()
    };
    let line = instruction_line(&overdue);
    assert!(
        line.ends_with(" 0 fen  [overdue since 1970-01-01T00:00:00Z]"),
        "{line}"
    );
    let detail = instruction_detail(&i);
    assert!(
        detail.contains("in force until 1970-01-03T00:00:00Z"),
        "{detail}"
    );
    assert!(detail.contains("late by 2 s"), "{detail}");
}

#[test]
fn instruction_json_has_the_lifecycle_fields() {
    let v = instruction_json(&chased());
    assert_eq!(v["effective_until"], "1970-01-03T00:00:00Z");
    assert_eq!(v["overdue_at"], Value::Null);
    assert_eq!(v["parent_instruction_id"], Value::Null);
    assert_eq!(v["hops"][0]["result"], "followed");
    assert_eq!(v["hops"][0]["child_instruction_id"], "I3");
    assert_eq!(v["hops"][1]["child_instruction_id"], Value::Null);
    assert_eq!(v["acknowledgement"]["late_by_ms"], 2_500);
    assert_eq!(
        v["acknowledgement"]["onward_transfers"][0]["time"],
        "1970-01-01T00:01:00Z"
    );
}

#[test]
fn graphs_list_accounts_then_transfers() {
    let g = pb::CaseGraph {
        police_agency: "PSB-SZ".into(),
        case_reference: "SZ-1".into(),
        accounts: vec![pb::GraphAccount {
            institution_code: "ICBC".into(),
            account_number: "6222020000001117".into(),
            account_name: "Wang Wu".into(),
            depth: 1,
            requested_fen: 3000,
            held_fen: 1500,
            instruction_ids: vec!["I2".into(), "I5".into()],
        }],
        transfers: vec![pb::GraphTransfer {
            from_institution_code: "ICBC".into(),
            from_account_number: "6222020000001117".into(),
            from_instruction_id: "I2".into(),
            hop: chased().hops.first().cloned(),
        }],
    };
    let text = graph_lines(&g);
    assert!(text.starts_with("case SZ-1  agency PSB-SZ  1 account(s), 1 transfer(s)"));
    assert!(
        text.contains("  1     ICBC     6222020000001117     Wang Wu"),
        "{text}"
    );
    assert!(text.contains("I2,I5"), "{text}");
    assert!(
        text.contains("ICBC 6222020000001117 -> CCB 6217000000009999"),
        "{text}"
    );
    assert!(text.ends_with("(reported with I2)"), "{text}");
    let v = graph_json(&g);
    assert_eq!(v["accounts"][0]["held_fen"], 1500);
    assert_eq!(v["transfers"][0]["hop"]["followed_amount_fen"], 1500);
}

#[test]
fn durations_are_rough() {
    assert_eq!(duration(850), "850 ms");
    assert_eq!(duration(42_000), "42 s");
    assert_eq!(duration(180_000), "3 min");
    assert_eq!(duration(47 * 3_600_000), "47 h");
    assert_eq!(duration(180 * 86_400_000), "180 d");
    assert_eq!(duration(-5_000), "-5 s");
}
