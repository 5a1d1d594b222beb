//! Per-institution delivery: every unacknowledged instruction (stop-payments and releases
//! first, then freezes and renewals), the notifications after the subscriber's cursor
//! (overdue reminders, lapses), then whatever becomes durable next.
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
use crate::proto::stophub::bank::v1::{self as pb, SubscribeResponse};
use crate::service::convert;
use crate::store::DeliveryKind;

/// How many entries one store read fetches.
const PAGE: usize = 256;
/// Priorities of `Action::priority`, highest first.
const PRIORITIES: [u8; 2] = [0, 1];

type Tx = mpsc::Sender<Result<SubscribeResponse, Status>>;
pub type DeliveryStream = ReceiverStream<Result<SubscribeResponse, Status>>;

/// Where one subscriber stands.
struct Cursor {
    /// Per priority: the last unacknowledged sequence sent on this stream.
    unacked: [u64; PRIORITIES.len()],
    /// The last delivery-log sequence examined for notifications.
    log: u64,
}

/// Starts the delivery task for one subscriber of `institution`.
pub fn subscribe(hub: Arc<Hub>, institution: String, after: u64) -> Result<DeliveryStream, Error> {
    let mut watermark = hub.watermark(&institution).ok_or_else(|| {
        Error::PermissionDenied(format!("institution {institution} is not registered"))
    })?;
    // Streams send only what is durable, so no bank can have processed beyond the watermark: a
    // cursor ahead of it means the bank's cursor or the hub's data is not what the other side
    // thinks. Refused, not clamped: silently starting from the end would let the bank skip the
    // notifications numbered at or below its cursor that the hub issues next.
    let durable = *watermark.borrow();
    if after > durable {
        tracing::warn!(%institution, after, durable, "subscriber cursor is ahead of the hub; refused");
        return Err(Error::OutOfRange(format!(
            "after_sequence: {after} is beyond the last sequence issued to {institution} ({durable}); \
             resume from at most {durable}"
        )));
    }
    let (tx, rx) = mpsc::channel(64);
    let shutdown = hub.shutdown_token().clone();
    tokio::spawn(async move {
        let mut cursor = Cursor {
            unacked: [0; PRIORITIES.len()],
            log: after,
        };
        tracing::info!(%institution, after, "bank stream opened");
        hub.metrics()
            .bank_streams
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result: Result<(), ()> = async {
            loop {
                let upto = *watermark.borrow_and_update();
                while send_page(&hub, &institution, &mut cursor, upto, &tx).await? {}
                tokio::select! {
                    changed = watermark.changed() => if changed.is_err() { return Ok(()) },
                    _ = shutdown.cancelled() => {
                        // Not OK: the bank must reconnect and resume, not believe it is done.
                        let _ = tx.send(Err(Status::unavailable("the hub is shutting down: reconnect and resume from your last sequence"))).await;
                        return Ok(());
                    }
                    _ = tx.closed() => return Err(()),
                }
            }
        }
        .await;
        let _ = result;
        hub.metrics()
            .bank_streams
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(%institution, "bank stream closed");
    });
    Ok(ReceiverStream::new(rx))
}

/// Sends one page of the most urgent pending work up to `upto`. Returns whether anything was
/// sent (so the caller asks again), `Err` when the subscriber is gone.
async fn send_page(
    hub: &Hub,
    institution: &str,
    cursor: &mut Cursor,
    upto: u64,
    tx: &Tx,
) -> Result<bool, ()> {
    for (p, priority) in PRIORITIES.iter().enumerate() {
        let entries = or_send_error(
            hub.store()
                .unacked(institution, *priority, cursor.unacked[p], upto, PAGE),
            tx,
        )
        .await?;
        if let Some(&(last, _)) = entries.last() {
            cursor.unacked[p] = last;
            for (seq, id) in entries {
                send(hub, tx, seq, &id, DeliveryKind::Instruction).await?;
            }
            // Re-check the higher priorities before going on.
            return Ok(true);
        }
    }
    let entries =
        or_send_error(hub.store().outbox(institution, cursor.log, upto, PAGE), tx).await?;
    let Some(&(last, _)) = entries.last() else {
        return Ok(false);
    };
    cursor.log = last;
    for (seq, entry) in entries {
        // Instructions themselves come from the unacknowledged index above.
        if entry.kind != DeliveryKind::Instruction {
            send(hub, tx, seq, &entry.instruction_id, entry.kind).await?;
        }
    }
    Ok(true)
}

async fn or_send_error<T>(r: Result<T, Error>, tx: &Tx) -> Result<T, ()> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = tx.send(Err(e.into())).await;
            Err(())
        }
    }
}

async fn send(hub: &Hub, tx: &Tx, seq: u64, id: &str, kind: DeliveryKind) -> Result<(), ()> {
    let Some(rec) = or_send_error(hub.store().instruction(id), tx).await? else {
        return Ok(());
    };
    let redelivery = kind == DeliveryKind::Instruction && rec.delivered_at.is_some();
    if kind == DeliveryKind::Instruction && rec.state == State::Pending {
        hub.mark_delivered(id);
    }
    let msg = SubscribeResponse {
        sequence: seq,
        instruction: Some(convert::instruction_to_proto(&rec)),
        redelivery,
        kind: match kind {
            DeliveryKind::Instruction => pb::DeliveryKind::Instruction,
            DeliveryKind::OverdueReminder => pb::DeliveryKind::OverdueReminder,
            DeliveryKind::Lapsed => pb::DeliveryKind::Lapsed,
        } as i32,
        urgent: rec.state == State::Overdue,
    };
    tx.send(Ok(msg)).await.map_err(|_| ())
}
