//! `SyncBlacklist`: a snapshot of the entries in force and then the live changes, or, for a
//! bank that resumes from a recent version, exactly the changes it missed.
//!
//! The snapshot pages through the store while writers go on (they are never blocked); it
//! carries the version it started from, and the change log is replayed from there, so an
//! entry changed during the snapshot comes again as a change: banks apply by version.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::domain::blacklist::ListingState;
use crate::error::Error;
use crate::hub::Hub;
use crate::proto::stophub::bank::v1::{SyncBlacklistResponse, SyncKind};
use crate::service::convert;

const PAGE: usize = 1024;

type Tx = mpsc::Sender<Result<SyncBlacklistResponse, Status>>;
pub type SyncStream = ReceiverStream<Result<SyncBlacklistResponse, Status>>;

pub fn sync(hub: Arc<Hub>, institution: String, from_version: u64) -> SyncStream {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let result = run(&hub, &tx, from_version).await;
        match result {
            Ok(()) => {}
            Err(Some(e)) => {
                let _ = tx.send(Err(e.into())).await;
            }
            Err(None) => {}
        }
        tracing::info!(%institution, "blacklist sync closed");
    });
    ReceiverStream::new(rx)
}

/// `Err(None)`: the subscriber left; `Err(Some)`: a store error to report.
async fn run(hub: &Hub, tx: &Tx, from_version: u64) -> Result<(), Option<Error>> {
    let mut watermark = hub.blacklist_watermark();
    let current = *watermark.borrow_and_update();
    let oldest = hub.store().oldest_blacklist_version().map_err(Some)?;
    let replayable = from_version > 0
        && from_version <= current
        && oldest.is_none_or(|o| from_version.saturating_add(1) >= o);
    let mut cursor = if replayable {
        from_version
    } else {
        snapshot(hub, tx, current).await?;
        current
    };
    let shutdown = hub.shutdown_token().clone();
    let mut caught_up = false;
    loop {
        let upto = *watermark.borrow_and_update();
        while cursor < upto {
            let changes = hub
                .store()
                .blacklist_changes(cursor, upto, PAGE)
                .map_err(Some)?;
            // The log is bounded: if the next version was trimmed while this subscriber fell
            // behind, replaying would skip changes; a fresh snapshot is the only safe answer.
            if changes.first().map(|c| c.version) != Some(cursor + 1) {
                tracing::warn!(
                    cursor,
                    upto,
                    "blacklist subscriber fell behind the change log: fresh snapshot"
                );
                snapshot(hub, tx, upto).await?;
                cursor = upto;
                continue;
            }
            let last = changes.last().map_or(cursor, |c| c.version);
            for c in &changes {
                send(tx, convert::change_to_proto(c)).await?;
            }
            cursor = last;
        }
        if !caught_up {
            caught_up = true;
            let msg = SyncBlacklistResponse {
                kind: SyncKind::CaughtUp as i32,
                version: cursor,
                ..Default::default()
            };
            send(tx, msg).await?;
        }
        tokio::select! {
            changed = watermark.changed() => if changed.is_err() { return Ok(()) },
            _ = shutdown.cancelled() => {
                let _ = tx.send(Err(Status::unavailable("the hub is shutting down: sync again from your last version"))).await;
                return Ok(());
            }
            _ = tx.closed() => return Err(None),
        }
    }
}

async fn send(tx: &Tx, msg: SyncBlacklistResponse) -> Result<(), Option<Error>> {
    tx.send(Ok(msg)).await.map_err(|_| None)
}

async fn snapshot(hub: &Hub, tx: &Tx, version: u64) -> Result<(), Option<Error>> {
    let marker = |kind: SyncKind| SyncBlacklistResponse {
        kind: kind as i32,
        version,
        ..Default::default()
    };
    send(tx, marker(SyncKind::SnapshotBegin)).await?;
    let mut after = String::new();
    loop {
        let page = hub
            .store()
            .blacklist_entries_after(&after, PAGE)
            .map_err(Some)?;
        let Some(last) = page.last() else { break };
        after = last.subject.key();
        // Entries newer than the snapshot's version may not be durable yet: they come as
        // changes, replayed from that version once they are.
        for e in page
            .iter()
            .filter(|e| e.state == ListingState::Listed && e.version <= version)
        {
            send(
                tx,
                SyncBlacklistResponse {
                    kind: SyncKind::SnapshotEntry as i32,
                    version: e.version,
                    subject: Some(convert::subject_to_proto(&e.subject)),
                    effects: Some(convert::effects_to_proto(e.effects)),
                    listed_until: Some(convert::timestamp_to_proto(e.expires_at)),
                },
            )
            .await?;
        }
    }
    send(tx, marker(SyncKind::SnapshotEnd)).await
}
