//! Police watches: the current state of a notice's instructions, then every change, until all
//! are final (or all answered, if asked) or the watcher leaves.
//!
//! Events come from the hub's broadcast after each durable batch. Each instruction carries a
//! version, so the watch sends each version at most once and in order; a watcher that falls
//! behind the broadcast re-reads the store and continues from there. Next-level stops issued by
//! following the money belong to the notice and join the watch as they appear.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::domain::instruction::InstructionRecord;
use crate::domain::notice::NoticeRecord;
use crate::hub::{Change, ChangeKind, Hub};
use crate::proto::stophub::police::v1::{WatchEventKind, WatchNoticeResponse};
use crate::service::convert;

pub type WatchStream = ReceiverStream<Result<WatchNoticeResponse, Status>>;

struct Watcher {
    tx: mpsc::Sender<Result<WatchNoticeResponse, Status>>,
    until_answered: bool,
    /// Per instruction: the version last sent, and whether it needs watching no more.
    sent: HashMap<String, (u32, bool)>,
}

impl Watcher {
    fn done(&self, rec: &InstructionRecord) -> bool {
        if self.until_answered {
            !rec.state.awaiting_answer()
        } else {
            rec.is_final()
        }
    }

    /// Sends `rec` if it is newer than what was sent. `Err` when the watcher is gone.
    async fn offer(
        &mut self,
        rec: &InstructionRecord,
        initial: bool,
        kind: ChangeKind,
    ) -> Result<(), ()> {
        let done = self.done(rec);
        let entry = self
            .sent
            .entry(rec.instruction_id.clone())
            .or_insert((0, false));
        if kind == ChangeKind::State && !initial && rec.version <= entry.0 {
            return Ok(());
        }
        if kind == ChangeKind::State {
            *entry = (rec.version, done);
        }
        let msg = WatchNoticeResponse {
            instruction: Some(convert::instruction_to_proto(rec)),
            initial,
            kind: match kind {
                ChangeKind::State => WatchEventKind::State,
                ChangeKind::RenewalReminder => WatchEventKind::RenewalReminder,
            } as i32,
        };
        self.tx.send(Ok(msg)).await.map_err(|_| ())
    }

    fn all_done(&self) -> bool {
        self.sent.values().all(|(_, done)| *done)
    }
}

pub fn watch(hub: Arc<Hub>, notice: NoticeRecord, until_answered: bool) -> WatchStream {
    let (tx, rx) = mpsc::channel(64);
    // Subscribe before reading, so that no change between the read and the subscription is missed.
    let mut events = hub.subscribe_events();
    let shutdown = hub.shutdown_token().clone();
    tokio::spawn(async move {
        let mut w = Watcher {
            tx,
            until_answered,
            sent: HashMap::new(),
        };
        let result: Result<(), ()> = async {
            let reread = |hub: &Hub| -> Result<Vec<InstructionRecord>, ()> {
                let notice = hub
                    .store()
                    .notice(&notice.notice_id)
                    .ok()
                    .flatten()
                    .ok_or(())?;
                hub.notice_instructions(&notice).map_err(|_| ())
            };
            for rec in reread(&hub)? {
                w.offer(&rec, true, ChangeKind::State).await?;
            }
            // Each message is one committed batch, whole: an answer and the next-level stops it
            // caused arrive together, so "all answered" is never judged between the two.
            while !w.all_done() {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(batch) => {
                            // One event per instruction per batch: its last version (an answer
                            // and the hops it caused are two versions of one commit).
                            let mine: Vec<&Change> = batch.iter().filter(|c| c.record.notice_id == notice.notice_id).collect();
                            for (i, change) in mine.iter().enumerate() {
                                let superseded = mine[i + 1..].iter().any(|later| {
                                    later.kind == change.kind && later.record.instruction_id == change.record.instruction_id
                                });
                                if !superseded {
                                    w.offer(&change.record, false, change.kind).await?;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            for rec in reread(&hub)? {
                                w.offer(&rec, false, ChangeKind::State).await?;
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    _ = shutdown.cancelled() => {
                        // Not OK: an ended watch would read as "every instruction final".
                        let _ = w.tx.send(Err(Status::unavailable("the hub is shutting down: watch again"))).await;
                        return Ok(());
                    }
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
