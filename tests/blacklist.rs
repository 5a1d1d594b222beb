//! The account blacklist: listing by city-level police only, checked identity numbers, terms
//! and effects from the legal basis, the consecutive-year cap, lapse at expiry, appeals, and
//! institutions screening and mirroring it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use stophub::domain::ids::Timestamp;
use stophub::domain::policy::add_months;
use stophub::hub::HubConfig;
use stophub::participants::{self, Institution, InstitutionKind};
use stophub::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use stophub::proto::stophub::bank::v1::{
    CheckSubjectRequest, SyncBlacklistRequest, SyncBlacklistResponse, SyncKind,
};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::{
    DecideAppealRequest, GetListingRequest, RecordAppealRequest,
};
use stophub::proto::stophub::police::v1::{DelistSubjectRequest, ListSubjectRequest};
use tonic::Code;
use tonic::transport::Channel;

/// A valid 18-digit resident id: 17 digits from `n`, then the check character.
fn resident_id(n: u32) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let body = format!("44030519900101{:03}", n % 1000);
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

fn person(number: &str) -> pb::SubjectRef {
    pb::SubjectRef {
        document_type: pb::DocumentType::ResidentId as i32,
        document_number: number.into(),
    }
}

fn listing(request_id: &str, subject: pb::SubjectRef, basis: &str) -> ListSubjectRequest {
    ListSubjectRequest {
        request_id: request_id.into(),
        subject: Some(subject),
        subject_name: "Zhao Liu".into(),
        legal_basis: basis.into(),
        case_reference: "SZ-2026-0042".into(),
    }
}

const FIVE_YEARS: &str = "PBOC-2019-ACCOUNT-TRADING";
const IDENTIFIED: &str = "JPM-2024-IDENTIFIED";

fn months(from_ms: i64, n: u32) -> i64 {
    add_months(Timestamp::from_millis(from_ms), n).millis()
}

async fn list(
    hub: &TestHub,
    req: ListSubjectRequest,
) -> Result<stophub::proto::stophub::police::v1::ListSubjectResponse, tonic::Status> {
    hub.police("PSB-SZ")
        .await
        .list_subject(req)
        .await
        .map(|r| r.into_inner())
}

async fn check(
    bank: &mut BankServiceClient<Channel>,
    subjects: Vec<pb::SubjectRef>,
) -> Result<Vec<stophub::proto::stophub::bank::v1::CheckResult>, tonic::Status> {
    bank.check_subject(CheckSubjectRequest { subjects })
        .await
        .map(|r| r.into_inner().results)
}

async fn sync(
    bank: &mut BankServiceClient<Channel>,
    from_version: u64,
) -> tonic::Streaming<SyncBlacklistResponse> {
    bank.sync_blacklist(SyncBlacklistRequest { from_version })
        .await
        .unwrap()
        .into_inner()
}

fn kind(m: &SyncBlacklistResponse) -> SyncKind {
    SyncKind::try_from(m.kind).unwrap()
}

/// The next message says the stream has delivered everything up to `version`.
async fn caught_up(stream: &mut tonic::Streaming<SyncBlacklistResponse>, version: u64) {
    let m = next(stream).await;
    assert_eq!((kind(&m), m.version), (SyncKind::CaughtUp, version));
}

/// Reads a snapshot (BEGIN .. END) into subject -> listed_until.
async fn read_snapshot(
    stream: &mut tonic::Streaming<SyncBlacklistResponse>,
) -> BTreeMap<String, i64> {
    let begin = next(stream).await;
    assert_eq!(kind(&begin), SyncKind::SnapshotBegin);
    let mut out = BTreeMap::new();
    loop {
        let m = next(stream).await;
        match kind(&m) {
            SyncKind::SnapshotEntry => {
                out.insert(
                    m.subject.unwrap().document_number,
                    ms_of(m.listed_until.as_ref()),
                );
            }
            SyncKind::SnapshotEnd => {
                // Nothing changed while it streamed, so the stream is current at once.
                caught_up(stream, m.version).await;
                return out;
            }
            other => panic!("unexpected {other:?} inside a snapshot"),
        }
    }
}

#[tokio::test]
async fn only_city_level_police_may_list_and_identity_numbers_are_checked() {
    let hub = TestHub::start().await;
    let id = resident_id(1);
    let err = hub
        .police("PSB-SZ-NS")
        .await
        .list_subject(listing("l-county", person(&id), FIVE_YEARS))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("city level"), "{}", err.message());
    // Wrong check characters, resident id and credit code, are refused naming the field.
    let mut wrong = id.clone();
    wrong.replace_range(17.., if id.ends_with('0') { "1" } else { "0" });
    let err = list(&hub, listing("l-bad", person(&wrong), FIVE_YEARS))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("subject.document_number")
            && err.message().contains("check character"),
        "{}",
        err.message()
    );
    let unit = |n: &str| pb::SubjectRef {
        document_type: pb::DocumentType::UnifiedSocialCreditCode as i32,
        document_number: n.into(),
    };
    let err = list(
        &hub,
        listing("l-bad2", unit("91350100M000100Y44"), FIVE_YEARS),
    )
    .await
    .unwrap_err();
    assert!(
        err.message().contains("check character"),
        "{}",
        err.message()
    );
    assert_eq!(
        list(&hub, listing("l-basis", person(&id), "NO-SUCH-BASIS"))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    // Nothing was stored by the refusals.
    let mut bank = hub.bank("ICBC").await;
    assert!(!check(&mut bank, vec![person(&id)]).await.unwrap()[0].listed);
    // A unit with a good code, and a person given in full-width digits (normalised).
    list(
        &hub,
        listing("l-unit", unit("91350100M000100Y43"), FIVE_YEARS),
    )
    .await
    .unwrap();
    let full_width: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 + 0xFEE0).unwrap()
            } else {
                c
            }
        })
        .collect();
    let listed = list(&hub, listing("l-fw", person(&full_width), FIVE_YEARS))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(
        listed.subject.unwrap().document_number,
        id,
        "stored normalised, not as given"
    );
    let answers = check(
        &mut bank,
        vec![
            person(&id),
            unit("91350100M000100Y43"),
            person(&resident_id(2)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        answers.iter().map(|a| a.listed).collect::<Vec<_>>(),
        [true, true, false]
    );
    hub.stop().await;
}

#[tokio::test]
async fn term_and_effects_come_from_the_basis_and_the_cap_bounds_extensions() {
    let hub = TestHub::start().await;
    let t0 = now_ms(&hub);
    let five = list(&hub, listing("l-5", person(&resident_id(10)), FIVE_YEARS))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(ms_of(five.expires_at.as_ref()), months(t0, 60));
    assert_eq!(
        five.effects,
        Some(pb::Effects {
            bank_non_counter_suspended: true,
            payment_accounts_suspended: true,
            no_new_accounts: true
        })
    );
    assert_eq!(five.basis_table_version, "builtin-2026.1");
    let two = list(&hub, listing("l-2", person(&resident_id(11)), IDENTIFIED))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(ms_of(two.expires_at.as_ref()), months(t0, 24));

    // A year on, listed again: two more years from now.
    advance(&hub, 365 * DAY);
    let t1 = now_ms(&hub);
    let again = list(&hub, listing("l-2b", person(&resident_id(11)), IDENTIFIED))
        .await
        .unwrap();
    assert!(again.extended);
    let e = again.entry.unwrap();
    assert_eq!(
        (
            ms_of(e.expires_at.as_ref()),
            ms_of(e.consecutive_since.as_ref())
        ),
        (months(t1, 24), t0)
    );
    // Still listed at each step: extended again, then capped at five years from the first listing.
    advance(&hub, 690 * DAY);
    let t2 = now_ms(&hub);
    let third = list(&hub, listing("l-2x", person(&resident_id(11)), IDENTIFIED))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(ms_of(third.expires_at.as_ref()), months(t2, 24));
    advance(&hub, 540 * DAY);
    let capped = list(&hub, listing("l-2c", person(&resident_id(11)), IDENTIFIED))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(ms_of(capped.expires_at.as_ref()), months(t0, 60));
    let err = list(&hub, listing("l-2d", person(&resident_id(11)), IDENTIFIED))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("consecutive-listing cap"),
        "{}",
        err.message()
    );
    // An identical retry is recognised, not a new extension.
    let replay = list(&hub, listing("l-2c", person(&resident_id(11)), IDENTIFIED))
        .await
        .unwrap();
    assert!(replay.replayed);
    hub.stop().await;
}

#[tokio::test]
async fn a_syncing_bank_sees_listings_and_the_lapse_at_expiry_and_checks_show_only_effects_and_term()
 {
    let hub = TestHub::start().await;
    let mut bank = hub.bank("CMB").await;
    let mut stream = sync(&mut bank, 0).await;
    assert!(read_snapshot(&mut stream).await.is_empty());
    let id = resident_id(20);
    let entry = list(&hub, listing("l-lapse", person(&id), IDENTIFIED))
        .await
        .unwrap()
        .entry
        .unwrap();
    let listed = next(&mut stream).await;
    assert_eq!(
        (kind(&listed), listed.version),
        (SyncKind::Listed, entry.version)
    );
    let result = &check(&mut bank, vec![person(&id)]).await.unwrap()[0];
    assert!(result.listed && result.effects.as_ref().unwrap().no_new_accounts);
    assert_eq!(
        ms_of(result.listed_until.as_ref()),
        ms_of(entry.expires_at.as_ref())
    );

    advance(&hub, ms_of(entry.expires_at.as_ref()) - now_ms(&hub));
    let lapsed = next(&mut stream).await;
    assert_eq!(
        (kind(&lapsed), lapsed.subject.unwrap().document_number),
        (SyncKind::Lapsed, id.clone())
    );
    assert!(!check(&mut bank, vec![person(&id)]).await.unwrap()[0].listed);
    let mut oversight = hub.oversight("PBOC").await;
    let stored = oversight
        .get_listing(GetListingRequest {
            subject: Some(person(&id)),
        })
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(stored.state, pb::ListingState::Lapsed as i32);
    hub.stop().await;
}

#[tokio::test]
async fn delisting_is_for_the_listing_agency_and_an_upheld_appeal_reaches_every_syncing_bank() {
    let hub = TestHub::start().await;
    let codes: Vec<String> = participants::demo()
        .institutions
        .iter()
        .map(|i| i.code.clone())
        .collect();
    let mut streams = Vec::new();
    for code in &codes {
        let mut bank = hub.bank(code).await;
        let mut s = sync(&mut bank, 0).await;
        read_snapshot(&mut s).await;
        streams.push(s);
    }
    let (a, b) = (resident_id(30), resident_id(31));
    list(&hub, listing("l-a", person(&a), FIVE_YEARS))
        .await
        .unwrap();
    list(&hub, listing("l-b", person(&b), FIVE_YEARS))
        .await
        .unwrap();
    // Only PSB-SZ listed them: nobody else delists.
    let mut county = hub.police("PSB-SZ-NS").await;
    let err = county
        .delist_subject(DelistSubjectRequest {
            subject: Some(person(&a)),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    hub.police("PSB-SZ")
        .await
        .delist_subject(DelistSubjectRequest {
            subject: Some(person(&a)),
            reason: "listed in error".into(),
        })
        .await
        .unwrap();

    let mut oversight = hub.oversight("PBOC").await;
    let appeal = oversight
        .record_appeal(RecordAppealRequest {
            request_id: "ap-1".into(),
            subject: Some(person(&b)),
            grounds: "account was stolen".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .appeal
        .unwrap();
    let decided = oversight
        .decide_appeal(DecideAppealRequest {
            appeal_id: appeal.appeal_id.clone(),
            upheld: true,
            reason: "theft proven".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decided.entry.unwrap().state,
        pb::ListingState::AppealUpheld as i32
    );
    let err = oversight
        .decide_appeal(DecideAppealRequest {
            appeal_id: appeal.appeal_id,
            upheld: false,
            reason: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Police cannot record appeals; oversight cannot list.
    let mut police_as_oversight = stophub::client::oversight(hub.channel("police", "PSB-SZ").await);
    let err = police_as_oversight
        .record_appeal(RecordAppealRequest {
            request_id: "ap-2".into(),
            subject: Some(person(&a)),
            grounds: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut oversight_as_police = stophub::client::police(hub.channel("oversight", "PBOC").await);
    let err = oversight_as_police
        .list_subject(listing("l-c", person(&resident_id(32)), FIVE_YEARS))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Every institution saw: listed a, listed b, delisted a, delisted b (the appeal), in that order.
    for s in &mut streams {
        let got: Vec<(SyncKind, String)> =
            [next(s).await, next(s).await, next(s).await, next(s).await]
                .into_iter()
                .map(|m| (kind(&m), m.subject.unwrap().document_number))
                .collect();
        nothing_more(s).await;
        assert_eq!(
            got,
            [
                (SyncKind::Listed, a.clone()),
                (SyncKind::Listed, b.clone()),
                (SyncKind::Delisted, a.clone()),
                (SyncKind::Delisted, b.clone())
            ]
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_bank_resumes_from_its_version_or_gets_a_fresh_snapshot_when_too_far_behind() {
    let config = HubConfig {
        blacklist_log_retain: 3,
        ..HubConfig::default()
    };
    let hub = TestHub::start_with(participants::demo(), config).await;
    let mut bank = hub.bank("ICBC").await;
    for n in 0..3 {
        list(
            &hub,
            listing(&format!("r-{n}"), person(&resident_id(40 + n)), FIVE_YEARS),
        )
        .await
        .unwrap();
    }
    // Resume from version 1: exactly versions 2 and 3, no snapshot.
    let mut s = sync(&mut bank, 1).await;
    assert_eq!(
        [next(&mut s).await.version, next(&mut s).await.version],
        [2, 3]
    );
    caught_up(&mut s, 3).await;
    nothing_more(&mut s).await;
    drop(s);
    for n in 3..6 {
        list(
            &hub,
            listing(&format!("r-{n}"), person(&resident_id(40 + n)), FIVE_YEARS),
        )
        .await
        .unwrap();
    }
    // Version 1 is no longer in the log (3 kept): a fresh snapshot of all six, then live.
    let mut s = sync(&mut bank, 1).await;
    let snap = read_snapshot(&mut s).await;
    assert_eq!(snap.len(), 6);
    // A recent version still replays.
    let mut s2 = sync(&mut bank, 4).await;
    assert_eq!(
        [next(&mut s2).await.version, next(&mut s2).await.version],
        [5, 6]
    );
    caught_up(&mut s2, 6).await;
    list(
        &hub,
        listing("r-live", person(&resident_id(49)), FIVE_YEARS),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut s).await.version, 7);
    assert_eq!(next(&mut s2).await.version, 7);
    hub.stop().await;
}

#[tokio::test]
async fn checks_are_rate_limited_per_institution_and_capped_at_100_subjects() {
    let config = HubConfig {
        checks_per_second: 5,
        ..HubConfig::default()
    };
    let hub = TestHub::start_with(participants::demo(), config).await;
    let mut icbc = hub.bank("ICBC").await;
    let five: Vec<pb::SubjectRef> = (0..5).map(|n| person(&resident_id(60 + n))).collect();
    check(&mut icbc, five.clone()).await.unwrap();
    let err = check(&mut icbc, five.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("rate limit"), "{}", err.message());
    // Another institution has its own budget.
    let mut ccb = hub.bank("CCB").await;
    check(&mut ccb, five).await.unwrap();
    let many: Vec<pb::SubjectRef> = (0..101).map(|n| person(&resident_id(n))).collect();
    assert_eq!(
        check(&mut ccb, many).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // Police and oversight cannot screen through the bank service.
    let mut as_police = stophub::client::bank(hub.channel("police", "PSB-SZ").await);
    assert_eq!(
        check(&mut as_police, vec![person(&resident_id(1))])
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_institutions_syncing_at_once_end_with_the_same_list() {
    let mut file = participants::demo();
    for n in 0..100 {
        file.institutions.push(Institution {
            code: format!("BANK{n:03}"),
            name: format!("Bank {n}"),
            kind: InstitutionKind::Bank,
        });
    }
    let hub = TestHub::start_with(file, HubConfig::default()).await;
    // Some listed before they connect, the rest while they sync.
    for n in 0..10 {
        list(
            &hub,
            listing(
                &format!("pre-{n}"),
                person(&resident_id(100 + n)),
                FIVE_YEARS,
            ),
        )
        .await
        .unwrap();
    }
    let mut tasks = Vec::new();
    for n in 0..100 {
        let channel = hub.channel("bank", &format!("BANK{n:03}")).await;
        tasks.push(tokio::spawn(async move {
            let mut bank = stophub::client::bank(channel);
            let mut s = bank
                .sync_blacklist(SyncBlacklistRequest { from_version: 0 })
                .await
                .unwrap()
                .into_inner();
            let mut mirror: BTreeMap<String, u64> = BTreeMap::new();
            let mut version = 0;
            while version < 25 {
                let m = tokio::time::timeout(Duration::from_secs(20), s.message())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                let key = m.subject.as_ref().map(|s| s.document_number.clone());
                match kind(&m) {
                    SyncKind::SnapshotBegin | SyncKind::SnapshotEnd | SyncKind::CaughtUp => {
                        version = version.max(m.version)
                    }
                    SyncKind::SnapshotEntry | SyncKind::Listed | SyncKind::Extended => {
                        let k = key.unwrap();
                        if mirror.get(&k).is_none_or(|v| *v < m.version) {
                            mirror.insert(k, m.version);
                        }
                        version = version.max(m.version);
                    }
                    SyncKind::Delisted | SyncKind::Lapsed => {
                        mirror.remove(&key.unwrap());
                        version = version.max(m.version);
                    }
                    SyncKind::Unspecified => panic!("unspecified"),
                }
            }
            mirror.into_keys().collect::<Vec<_>>()
        }));
    }
    for n in 10..20 {
        list(
            &hub,
            listing(
                &format!("live-{n}"),
                person(&resident_id(100 + n)),
                FIVE_YEARS,
            ),
        )
        .await
        .unwrap();
    }
    let mut police = hub.police("PSB-SZ").await;
    for n in [0, 3, 12, 15, 19] {
        police
            .delist_subject(DelistSubjectRequest {
                subject: Some(person(&resident_id(100 + n))),
                reason: "error".into(),
            })
            .await
            .unwrap();
    }
    let expected: Vec<String> = (0..20)
        .filter(|n| ![0, 3, 12, 15, 19].contains(n))
        .map(|n| resident_id(100 + n))
        .collect();
    let mut expected = expected;
    expected.sort();
    for t in tasks {
        assert_eq!(t.await.unwrap(), expected);
    }
    hub.stop().await;
}
