//! Resource limits end to end: the largest message, open streams and call rates per caller
//! (keyed by certificate), the backlog limit per institution, HTTP/2 keepalive detecting a
//! silent peer, and a nearly full disk refusing writes with UNAVAILABLE and recovering.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use stophub::client;
use stophub::hub::HubConfig;
use stophub::limits::CallerLimits;
use stophub::participants;
use stophub::proto::stophub::bank::v1::{CheckSubjectRequest, SubscribeRequest};
use stophub::proto::stophub::common::v1 as pb;
use stophub::proto::stophub::oversight::v1::VerifyAuditRequest;
use stophub::proto::stophub::police::v1::GetNoticeRequest;
use stophub::proto::stophub::police::v1::police_service_client::PoliceServiceClient;
use tonic::Code;

fn limited(requests_per_second: u32, max_streams: usize, max_backlog: u64) -> HubConfig {
    HubConfig {
        callers: CallerLimits {
            requests_per_second,
            max_streams,
        },
        max_backlog,
        ..HubConfig::default()
    }
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_connection_carries_on() {
    let hub = TestHub::start().await;
    let channel = hub.channel("police", "PSB-SZ").await;
    // A client that would send anything: the hub must be the one to refuse.
    let mut police = PoliceServiceClient::new(channel).max_encoding_message_size(64 << 20);
    let mut big = notice(&hub, "big-1", vec![suspect("ICBC", "6222020000000001", 1)]);
    big.case_reference = "x".repeat(stophub::server::MAX_MESSAGE_BYTES + 1);
    let err = police.submit_notice(big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    assert!(listed(&hub, "ICBC", &[]).await.is_empty());
    // The same connection still serves a normal notice.
    let ok = police
        .submit_notice(notice(
            &hub,
            "small-1",
            vec![suspect("ICBC", "6222020000000001", 1)],
        ))
        .await
        .expect("a normal notice after the oversized one");
    assert_eq!(ok.into_inner().notice.unwrap().instructions.len(), 1);
}

#[tokio::test]
async fn open_streams_are_limited_per_caller_and_freed_when_closed() {
    let hub = TestHub::start_with(participants::demo(), limited(0, 3, 100_000)).await;
    let mut icbc = hub.bank("ICBC").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let stream = icbc
            .subscribe(SubscribeRequest { after_sequence: 0 })
            .await
            .expect("within the limit");
        open.push(stream.into_inner());
    }
    let err = icbc
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("bank:ICBC") && err.message().contains("at most 3"),
        "{err:?}"
    );
    // Another institution has its own slots; unary calls need none.
    let _ccb = hub
        .bank("CCB")
        .await
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .expect("CCB is not limited by ICBC's streams");
    submit(
        &hub,
        notice(&hub, "n-1", vec![suspect("ICBC", "6222020000000001", 1)]),
    )
    .await;
    // Closing a stream gives its slot back.
    drop(open.pop());
    eventually(Duration::from_secs(10), || {
        let mut icbc = icbc.clone();
        async move {
            icbc.subscribe(SubscribeRequest { after_sequence: 0 })
                .await
                .ok()
        }
    })
    .await;
}

#[tokio::test]
async fn call_rates_are_limited_per_caller_not_globally() {
    let hub = TestHub::start_with(participants::demo(), limited(20, 256, 100_000)).await;
    let mut noisy = hub.police("PSB-SZ").await;
    let get = || GetNoticeRequest {
        notice_id: "N-0000000000000001".into(),
    };
    let mut refused = None;
    for _ in 0..2_000 {
        match noisy.get_notice(get()).await {
            Err(s) if s.code() == Code::ResourceExhausted => {
                refused = Some(s);
                break;
            }
            Err(s) => assert_eq!(s.code(), Code::NotFound, "{s:?}"),
            Ok(_) => panic!("no such notice"),
        }
    }
    let refused = refused.expect("the noisy caller is limited");
    assert!(
        refused.message().contains("rate limit") && refused.message().contains("police:PSB-SZ"),
        "{refused:?}"
    );
    // Another agency, with its own certificate, is served at once.
    let other = hub.police("PSB-SZ-NS").await.get_notice(get()).await;
    assert_eq!(other.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn a_far_behind_institution_gets_no_more_notices_until_it_answers() {
    let hub = TestHub::start_with(participants::demo(), limited(0, 256, 2)).await;
    let mut police = hub.police("PSB-SZ").await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let notice = submit(
            &hub,
            notice(
                &hub,
                &format!("cmb-{n}"),
                vec![suspect("CMB", &format!("622588000000000{n}"), 100)],
            ),
        )
        .await;
        ids.extend(notice.instructions.into_iter().map(|i| i.instruction_id));
    }
    let third = notice(
        &hub,
        "cmb-2",
        vec![
            suspect("ICBC", "6222020000000001", 100),
            suspect("CMB", "6225880000000002", 100),
        ],
    );
    let err = police.submit_notice(third.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("suspect_accounts[1].institution_code: CMB is far behind")
            && err.message().contains("limit 2"),
        "{err:?}"
    );
    // Nothing of the refused notice was stored, not even for ICBC.
    assert!(listed(&hub, "ICBC", &[]).await.is_empty());
    assert_eq!(listed(&hub, "CMB", &[]).await.len(), 2);
    // Other institutions are not held back.
    submit(
        &hub,
        notice(
            &hub,
            "icbc-0",
            vec![suspect("ICBC", "6222020000000009", 100)],
        ),
    )
    .await;
    // Once CMB answers one, the same request goes through.
    ack(&hub, "CMB", &ids[0], executed(100, now_ms(&hub))).await;
    let accepted = police
        .submit_notice(third)
        .await
        .expect("accepted once CMB caught up")
        .into_inner()
        .notice
        .unwrap();
    assert_eq!(accepted.instructions.len(), 2);
}

/// A TCP relay that can be told to go silent: it then neither forwards nor closes anything,
/// like a peer whose machine froze or whose network dropped every packet.
async fn silent_able_relay(target: std::net::SocketAddr) -> (u16, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = Arc::new(AtomicBool::new(false));
    let flag = silent.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let outbound = tokio::net::TcpStream::connect(target).await.unwrap();
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(relay(ri, wo, flag.clone()));
            tokio::spawn(relay(ro, wi, flag.clone()));
        }
    });
    (port, silent)
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            // Hold both sockets open and say nothing, for ever.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_silent_bank_is_dropped_by_keepalive() {
    let hub = TestHub::start().await;
    let (port, silent) = silent_able_relay(hub.addr).await;
    let channel = client::connect(
        &format!("https://127.0.0.1:{port}"),
        &hub.tls_for("bank", "ICBC"),
    )
    .await
    .expect("through the relay");
    let _stream = client::bank(channel)
        .subscribe(SubscribeRequest { after_sequence: 0 })
        .await
        .expect("subscribed")
        .into_inner();
    let streams = |m: &std::collections::HashMap<String, f64>| m["stophub_bank_streams"];
    eventually(Duration::from_secs(10), || async {
        (streams(&scrape(hub.metrics_addr).await) == 1.0).then_some(())
    })
    .await;
    silent.store(true, Ordering::SeqCst);
    let since = Instant::now();
    // The keepalive settings promise detection within 30 s; the wait allows for a slow CI.
    eventually(Duration::from_secs(90), || async {
        (streams(&scrape(hub.metrics_addr).await) == 0.0).then_some(())
    })
    .await;
    println!(
        "the silent bank's stream was dropped {:.1} s after it went silent",
        since.elapsed().as_secs_f64()
    );
}

/// A small tmpfs mounted for one test (needs root, as on the CI machine), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        assert!(
            std::env::var("STOPHUB_REQUIRE_TMPFS").is_err(),
            "STOPHUB_REQUIRE_TMPFS is set but a tmpfs cannot be mounted (root is needed)"
        );
        println!("SKIPPED: cannot mount a tmpfs here (not root)");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_nearly_full_disk_refuses_writes_and_recovers_when_space_returns() {
    let config = HubConfig {
        min_free_bytes: 16 << 20,
        ..HubConfig::default()
    };
    let (dir, clock) = TestHub::start_with(participants::demo(), config.clone())
        .await
        .stop()
        .await;
    let data = dir.path().join("data");
    std::fs::remove_dir_all(&data).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&data, 64) else {
        return;
    };
    let hub = TestHub::start_configured(dir, clock, config).await;
    let first = submit(
        &hub,
        notice(
            &hub,
            "disk-1",
            vec![suspect("ICBC", "6222020000000001", 100)],
        ),
    )
    .await;

    // Fill the disk to 8 MiB short of full: below the 16 MiB reserve.
    let filler = hub.dir.path().join("data").join("filler");
    {
        use std::io::Write;
        let free = fs2::available_space(&data).unwrap();
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..(free.saturating_sub(8 << 20) >> 20) {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    let second = notice(
        &hub,
        "disk-2",
        vec![suspect("CCB", "6217000000000002", 100)],
    );
    let mut police = hub.police("PSB-SZ").await;
    let err = police.submit_notice(second.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("disk is nearly full"), "{err:?}");
    let check = hub
        .bank("ICBC")
        .await
        .check_subject(CheckSubjectRequest {
            subjects: vec![pb::SubjectRef {
                document_type: pb::DocumentType::ResidentId as i32,
                document_number: "440305199001010018".into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(check.code(), Code::Unavailable, "{check:?}");
    assert_eq!(
        scrape(hub.metrics_addr).await["stophub_writes_refused"],
        1.0
    );
    // Reads go on.
    police
        .get_notice(GetNoticeRequest {
            notice_id: first.notice_id.clone(),
        })
        .await
        .expect("reads are served while writes are refused");
    assert!(listed(&hub, "CCB", &[]).await.is_empty());

    // Space returns: the same request is taken, with no restart.
    std::fs::remove_file(&filler).unwrap();
    let accepted = police
        .submit_notice(second)
        .await
        .expect("accepted once space returned");
    assert_eq!(accepted.into_inner().notice.unwrap().instructions.len(), 1);
    assert_eq!(
        scrape(hub.metrics_addr).await["stophub_writes_refused"],
        0.0
    );
    assert_eq!(listed(&hub, "CCB", &[]).await.len(), 1);
    let audit = hub
        .oversight("PBOC")
        .await
        .verify_audit(VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(audit.intact, "{audit:?}");
    hub.stop().await;
}
