//! Police watches: the current state of a notice's instructions, then every change, until all
//! are final or the watcher leaves.
//!
//! Events come from the hub's broadcast after each durable batch. Each instruction carries a
//! version, so the watch sends each version at most once and in order; a watcher that falls
//! behind the broadcast re-reads the store and continues from there.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::domain::instruction::InstructionRecord;
use crate::domain::notice::NoticeRecord;
use crate::hub::Hub;
use crate::proto::stophub::police::v1::WatchNoticeResponse;
use crate::service::convert;

pub type WatchStream = ReceiverStream<Result<WatchNoticeResponse, Status>>;

struct Watcher {
    tx: mpsc::Sender<Result<WatchNoticeResponse, Status>>,
    /// The version last sent, per instruction.
    sent: HashMap<String, (u32, bool)>,
}

impl Watcher {
    /// Sends `rec` if it is newer than what was sent. `Err` when the watcher is gone.
    async fn offer(&mut self, rec: &InstructionRecord, initial: bool) -> Result<(), ()> {
        let Some(entry) = self.sent.get_mut(&rec.instruction_id) else {
            return Ok(());
        };
        if !initial && rec.version <= entry.0 {
            return Ok(());
        }
        *entry = (rec.version, rec.state.is_final());
        let msg = WatchNoticeResponse {
            instruction: Some(convert::instruction_to_proto(rec)),
            initial,
        };
        self.tx.send(Ok(msg)).await.map_err(|_| ())
    }

    fn all_final(&self) -> bool {
        self.sent.values().all(|(_, done)| *done)
    }
}

pub fn watch(hub: Arc<Hub>, notice: NoticeRecord) -> WatchStream {
    let (tx, rx) = mpsc::channel(64);
    // Subscribe before reading, so that no change between the read and the subscription is missed.
    let mut events = hub.subscribe_events();
    let shutdown = hub.shutdown_token().clone();
    tokio::spawn(async move {
        let mut w = Watcher {
            tx,
            sent: notice
                .instruction_ids
                .iter()
                .map(|id| (id.clone(), (0, false)))
                .collect(),
        };
        let result: Result<(), ()> = async {
            let current = hub.notice_instructions(&notice).map_err(|_| ())?;
            for rec in &current {
                w.offer(rec, true).await?;
            }
            while !w.all_final() {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(rec) => {
                            if rec.notice_id == notice.notice_id {
                                w.offer(&rec, false).await?;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            for rec in hub.notice_instructions(&notice).map_err(|_| ())? {
                                w.offer(&rec, false).await?;
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = w.tx.closed() => return Err(()),
                }
            }
            Ok(())
        }
        .await;
        let _ = result;
    });
    ReceiverStream::new(rx)
}
