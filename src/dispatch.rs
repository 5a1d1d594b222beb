//! Per-institution delivery: replay what the institution has not acknowledged, then follow
//! the durable watermark for new work.
//!
//! A stream reads from the store, never from an in-memory queue, so nothing can be dropped
//! between the commit and the bank: the watermark only says "there is more up to N", and the
//! stream fetches it. It sends only what is durable (at or below the watermark).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::domain::instruction::State;
use crate::error::Error;
use crate::hub::Hub;
use crate::proto::stophub::bank::v1::SubscribeResponse;
use crate::service::convert;

/// How many entries one store read fetches.
const PAGE: usize = 256;

pub type DeliveryStream = ReceiverStream<Result<SubscribeResponse, Status>>;

/// Starts the delivery task for one subscriber of `institution`.
pub fn subscribe(hub: Arc<Hub>, institution: String, after: u64) -> Result<DeliveryStream, Error> {
    let mut watermark = hub.watermark(&institution).ok_or_else(|| {
        Error::PermissionDenied(format!("institution {institution} is not registered"))
    })?;
    let (tx, rx) = mpsc::channel(64);
    let shutdown = hub.shutdown_token().clone();
    tokio::spawn(async move {
        let durable = *watermark.borrow_and_update();
        // A cursor beyond anything issued cannot be trusted: treat it as "all issued so far".
        let after = if after > durable {
            tracing::warn!(%institution, after, durable, "subscriber cursor is ahead of the hub; clamped");
            durable
        } else {
            after
        };
        tracing::info!(%institution, after, "bank stream opened");
        let result: Result<(), ()> = async {
            // First, everything at or before the cursor that was never acknowledged, again.
            let mut cursor = 0;
            while let Some(last) = send_range(&hub, &institution, cursor, after, &tx).await? {
                cursor = last;
            }
            // Then everything after it, following the durable watermark.
            cursor = after;
            loop {
                let upto = *watermark.borrow_and_update();
                while let Some(last) = send_range(&hub, &institution, cursor, upto, &tx).await? {
                    cursor = last;
                }
                cursor = cursor.max(upto);
                tokio::select! {
                    changed = watermark.changed() => if changed.is_err() { return Ok(()) },
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tx.closed() => return Err(()),
                }
            }
        }
        .await;
        let _ = result;
        tracing::info!(%institution, "bank stream closed");
    });
    Ok(ReceiverStream::new(rx))
}

/// Sends up to one page of unacknowledged entries in `(after, upto]`. Returns the last
/// sequence sent, `None` when the range is exhausted, `Err` when the subscriber is gone.
async fn send_range(
    hub: &Hub,
    institution: &str,
    after: u64,
    upto: u64,
    tx: &mpsc::Sender<Result<SubscribeResponse, Status>>,
) -> Result<Option<u64>, ()> {
    let entries = match hub.store().unacked(institution, after, upto, PAGE) {
        Ok(entries) => entries,
        Err(e) => {
            let _ = tx.send(Err(e.into())).await;
            return Err(());
        }
    };
    let Some(&(last, _)) = entries.last() else {
        return Ok(None);
    };
    for (seq, id) in entries {
        let rec = match hub.store().instruction(&id) {
            Ok(Some(rec)) => rec,
            Ok(None) => continue,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return Err(());
            }
        };
        let redelivery = rec.delivered_at.is_some();
        if rec.state == State::Pending {
            hub.mark_delivered(&id);
        }
        let msg = SubscribeResponse {
            sequence: seq,
            instruction: Some(convert::instruction_to_proto(&rec)),
            redelivery,
        };
        if tx.send(Ok(msg)).await.is_err() {
            return Err(());
        }
    }
    Ok(Some(last))
}
