use super::*;
use crate::clock::ManualClock;
use crate::domain::ids::{AccountNumber, Fen, InstitutionCode};
use crate::domain::notice::{AccountKind, Action, SuspectAccount, VictimTransfer};

fn start() -> (tempfile::TempDir, Arc<Hub>, WriterHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let registry = Arc::new(Registry::from_file(crate::participants::demo()).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let (hub, writer) = Hub::start(
        store,
        registry,
        HubConfig::default(),
        clock,
        CancellationToken::new(),
    )
    .unwrap();
    (dir, hub, writer)
}

fn notice(request_id: &str, account: &str, amount: i64) -> NewNotice {
    NewNotice {
        request_id: request_id.into(),
        case_reference: "C-1".into(),
        action: Action::StopPayment,
        victim: VictimTransfer {
            institution_code: InstitutionCode::parse("CCB").unwrap(),
            account_number: AccountNumber::parse("621700001111").unwrap(),
            account_name: "Li Si".into(),
            currency: "CNY".into(),
            amount: Fen::new_unchecked(amount),
            transfer_time: Timestamp(1_799_999_000_000),
            transaction_reference: "T-1".into(),
        },
        accounts: vec![SuspectAccount {
            institution_code: InstitutionCode::parse("ICBC").unwrap(),
            account_number: AccountNumber::parse(account).unwrap(),
            account_name: "Wang Wu".into(),
            account_kind: AccountKind::Bank,
            amount: Fen::new_unchecked(amount),
            follows: None,
        }],
        case_filing: None,
        freeze: None,
        follow_depth: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_share_syncs() {
    let (_dir, hub, writer) = start();
    let before = hub.store().sync_count();
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.submit(
                    "PSB-SZ",
                    notice(&format!("r-{n}"), &format!("62220200{n:04}"), 100),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        assert!(!t.await.unwrap().unwrap().replayed);
    }
    let syncs = hub.store().sync_count() - before;
    assert!(
        syncs < 64,
        "64 concurrent submissions took {syncs} syncs: no group commit"
    );
    // Sequences are dense and unique.
    assert_eq!(hub.store().last_sequence("ICBC").unwrap(), 64);
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_identical_submissions_create_one_notice() {
    let (_dir, hub, writer) = start();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.submit("PSB-SZ", notice("same", "622202001111", 100))
                    .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let done = t.await.unwrap().unwrap();
        ids.insert(done.notice.notice_id.clone());
        fresh += usize::from(!done.replayed);
    }
    assert_eq!((ids.len(), fresh), (1, 1));
    // A racing conflicting payload is refused whichever batch it lands in.
    let err = hub
        .submit("PSB-SZ", notice("same", "622202001111", 200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)));
    assert_eq!(hub.store().last_sequence("ICBC").unwrap(), 1);
    writer.stop().await;
}
