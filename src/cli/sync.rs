//! `stophub bank sync`: keeps a local mirror of the account blacklist ([`super::mirror`])
//! from the `SyncBlacklist` stream, reconnecting with backoff and resuming after the last
//! version applied.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::Status;
use tonic::transport::Channel;

use super::mirror::{self, Applied, Mirror};
use super::{render, time};
use crate::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use crate::proto::stophub::bank::v1::{SyncBlacklistRequest, SyncBlacklistResponse, SyncKind};

/// Changes are written at most this often (and on exit).
const DEBOUNCE: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The mirror file to keep (format: see --help). If it exists, it is loaded and the stream
    /// resumes after its version.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Resume after this version instead of the file's; 0 for a fresh snapshot.
    #[arg(long, value_name = "N")]
    from_version: Option<u64>,
    /// Exit 0 once the mirror is current and written: when the hub says it has sent everything
    /// up to its current version (after a snapshot, or after replaying missed changes).
    #[arg(long)]
    exit_after_snapshot: bool,
    /// Exit when the stream ends or fails instead of reconnecting.
    #[arg(long)]
    once: bool,
}

pub const SYNC_LONG_HELP: &str = concat!(
    "Keeps FILE a copy of the blacklist entries in force, for `stophub bank check --mirror FILE`
(screening without a round trip to the hub). The first run receives a snapshot; later runs
resume after the file's version and receive only the changes since (or a fresh snapshot, if
the hub can no longer replay that far). After a broken stream it reconnects with backoff
(1 s doubling to 30 s) and resumes after the last version applied.

The file is written atomically (FILE.tmp, fsync, rename): when the snapshot is complete, then
at most every 200 ms while changes arrive, and on exit (Ctrl-C, SIGTERM). A snapshot cut
short is never written: the file keeps the last complete state. Format (JSON):
  {\"version\": 12,                    highest blacklist version applied; resume point
   \"synced_at\": \"2026-11-28T08:40:00Z\", when the file was written
   \"entries\": [{\"document_type\": \"resident-id\",        resident-id, passport or uscc
                \"document_number\": \"11010519491231002X\", as the hub normalised it
                \"effects\": {\"bank_non_counter_suspended\": true,
                            \"payment_accounts_suspended\": true, \"no_new_accounts\": true},
                \"listed_until\": \"2031-11-28T08:40:00Z\",   end of the term
                \"version\": 12}]}                           version of the entry's last change

One line per change: `v12  listed  resident-id 11010519491231002X  until ...  effects: ...`;
with --json, {\"event\": \"change\", \"kind\": \"listed\", \"version\": 12, \"result\": \"upserted\", ...}
(result: upserted, removed, absent, or stale when the mirror already had a newer version).

Example: refresh a mirror from a script, then screen against it:
  stophub bank sync --out /var/lib/stophub/mirror.json --exit-after-snapshot
  stophub bank check --mirror /var/lib/stophub/mirror.json --doc-type resident-id --doc-number 11010519491231002X

",
    super::exit_codes!()
);

/// Why a session stopped without an error.
enum Stop {
    /// Done: `--exit-after-snapshot` reached, or a signal.
    Done,
    /// The hub closed the stream.
    Ended,
}

struct Syncer {
    out: render::Out,
    path: PathBuf,
    mirror: Mirror,
    exit_after_snapshot: bool,
    /// Changes not yet written.
    dirty: bool,
    last_save: Option<Instant>,
    /// Whether the current session's stream was established (the backoff starts over).
    connected: bool,
}

/// Runs `bank sync` until done (`--exit-after-snapshot`, `--once`, a signal) or a refusal.
pub async fn run(
    client: &mut BankServiceClient<Channel>,
    args: &SyncArgs,
    out: render::Out,
) -> anyhow::Result<()> {
    let mut mirror = Mirror::load(&args.out)?.unwrap_or_default();
    if let Some(v) = args.from_version {
        mirror.version = v;
    }
    let mut syncer = Syncer {
        out,
        path: args.out.clone(),
        mirror,
        exit_after_snapshot: args.exit_after_snapshot,
        dirty: false,
        last_save: None,
        connected: false,
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut delay = BACKOFF_MIN;
    loop {
        syncer.connected = false;
        let result = syncer.session(client, &mut shutdown).await;
        if syncer.connected {
            delay = BACKOFF_MIN;
        }
        match result {
            Ok(Stop::Done) => return syncer.finish(),
            Ok(Stop::Ended) if args.once => return syncer.finish(),
            Err(e) if args.once || !super::bank::transient(&e) => {
                if let Err(save) = syncer.finish() {
                    eprintln!("stophub: {save:#}");
                }
                return Err(e);
            }
            Ok(Stop::Ended) => eprintln!(
                "stophub: the hub closed the stream; reconnecting in {}s from version {}",
                delay.as_secs(),
                syncer.mirror.resume_from()
            ),
            Err(e) => {
                let why = e
                    .downcast_ref::<Status>()
                    .map_or_else(|| format!("{e:#}"), super::status_line);
                eprintln!(
                    "stophub: {why}; reconnecting in {}s from version {}",
                    delay.as_secs(),
                    syncer.mirror.resume_from()
                );
            }
        }
        // Write what arrived before waiting.
        syncer.flush()?;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.as_mut() => return syncer.finish(),
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

impl Syncer {
    async fn session<F: Future<Output = ()>>(
        &mut self,
        client: &mut BankServiceClient<Channel>,
        shutdown: &mut Pin<&mut F>,
    ) -> anyhow::Result<Stop> {
        let from_version = self.mirror.resume_from();
        let mut stream = client
            .sync_blacklist(SyncBlacklistRequest { from_version })
            .await?
            .into_inner();
        self.connected = true;
        loop {
            let flush_at = self.flush_at();
            tokio::select! {
                message = stream.next() => match message {
                    None => return Ok(Stop::Ended),
                    Some(Err(status)) => return Err(status.into()),
                    Some(Ok(r)) => {
                        if self.handle(&r)? {
                            return Ok(Stop::Done);
                        }
                    }
                },
                () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    self.save()?;
                }
                () = shutdown.as_mut() => return Ok(Stop::Done),
            }
        }
    }

    /// Applies one message and prints it; true when `--exit-after-snapshot` is satisfied.
    fn handle(&mut self, r: &SyncBlacklistResponse) -> anyhow::Result<bool> {
        let applied = mirror::apply(&mut self.mirror, r);
        match applied {
            Applied::SnapshotBegun => {
                self.dirty = false;
                let version = r.version;
                self.out.emit(
                    || format!("snapshot of version {version}: receiving the entries in force"),
                    || json!({ "event": "snapshot_begin", "version": version }),
                )?;
            }
            Applied::SnapshotEntry => {}
            Applied::SnapshotEnded { .. } => {
                self.save()?;
                self.emit_current("snapshot_end", "snapshot complete")?;
            }
            Applied::CaughtUp => {
                self.save()?;
                self.emit_current("caught_up", "up to date")?;
                return Ok(self.exit_after_snapshot);
            }
            Applied::Upserted | Applied::Removed | Applied::Absent | Applied::Stale { .. } => {
                self.dirty = true;
                print_change(self.out, r, applied)?;
            }
            Applied::Ignored(why) => {
                // The version may have moved on.
                self.dirty = true;
                eprintln!(
                    "stophub: ignored a sync message (kind {}, version {}): {why}",
                    r.kind, r.version
                );
            }
        }
        Ok(false)
    }

    /// `snapshot complete: 3 entries in force at version 12; written to FILE`.
    fn emit_current(&self, event: &str, what: &str) -> anyhow::Result<()> {
        let (version, entries) = (self.mirror.version, self.mirror.entries.len());
        let file = self.path.display().to_string();
        self.out.emit(
            || {
                format!(
                    "{what}: {entries} entries in force at version {version}; written to {file}"
                )
            },
            || json!({ "event": event, "version": version, "entries": entries, "file": file }),
        )
    }

    /// When the pending changes are due to be written: [`DEBOUNCE`] after the last write.
    fn flush_at(&self) -> Option<Instant> {
        (self.dirty && !self.mirror.in_snapshot)
            .then(|| self.last_save.map_or_else(Instant::now, |t| t + DEBOUNCE))
    }

    fn save(&mut self) -> anyhow::Result<()> {
        self.mirror.save(&self.path, time::now())?;
        self.dirty = false;
        self.last_save = Some(Instant::now());
        Ok(())
    }

    /// Writes pending changes, if the mirror is complete.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.dirty && !self.mirror.in_snapshot {
            self.save()?;
        }
        Ok(())
    }

    /// On exit: writes pending changes; says so when a snapshot was cut short.
    fn finish(&mut self) -> anyhow::Result<()> {
        if self.mirror.in_snapshot {
            eprintln!(
                "stophub: the snapshot was cut short; {} left as it was",
                self.path.display()
            );
        }
        self.flush()
    }
}

/// The short name of a sync message's kind.
fn kind_name(v: i32) -> &'static str {
    match SyncKind::try_from(v) {
        Ok(SyncKind::SnapshotBegin) => "snapshot-begin",
        Ok(SyncKind::SnapshotEntry) => "snapshot-entry",
        Ok(SyncKind::SnapshotEnd) => "snapshot-end",
        Ok(SyncKind::CaughtUp) => "caught-up",
        Ok(SyncKind::Listed) => "listed",
        Ok(SyncKind::Extended) => "extended",
        Ok(SyncKind::Delisted) => "delisted",
        Ok(SyncKind::Lapsed) => "lapsed",
        Ok(SyncKind::Unspecified) | Err(_) => "unspecified",
    }
}

fn print_change(
    out: render::Out,
    r: &SyncBlacklistResponse,
    applied: Applied,
) -> anyhow::Result<()> {
    let kind = kind_name(r.kind);
    let result = match applied {
        Applied::Upserted => "upserted",
        Applied::Removed => "removed",
        Applied::Absent => "absent",
        _ => "stale",
    };
    out.emit(
        || {
            let subject = render::subject_text(r.subject.as_ref());
            let mut line = format!("v{:<5} {kind:<9} {subject}", r.version);
            if matches!(applied, Applied::Upserted) {
                line.push_str(&format!(
                    "  until {}  effects: {}",
                    time::format_opt(r.listed_until.as_ref()),
                    render::effects_text(r.effects.as_ref())
                ));
            }
            match applied {
                Applied::Stale { stored } => {
                    line.push_str(&format!("  (ignored: the mirror has version {stored})"));
                }
                Applied::Absent => line.push_str("  (not in the mirror)"),
                _ => {}
            }
            line
        },
        || {
            json!({
                "event": "change",
                "kind": kind,
                "version": r.version,
                "result": result,
                "subject": render::subject_json(r.subject.as_ref()),
                "effects": render::effects_json(r.effects.as_ref()),
                "listed_until": r.listed_until.as_ref().map(time::format),
            })
        },
    )
}

/// Resolves on Ctrl-C or SIGTERM, so that the mirror is written before exiting.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::mem::drop(ctrl_c.await),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_flags() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct S {
            #[command(flatten)]
            sync: SyncArgs,
        }
        let s = S::try_parse_from(["sync", "--out", "m.json", "--from-version", "7", "--once"])
            .unwrap()
            .sync;
        assert_eq!(
            (s.out, s.from_version, s.once, s.exit_after_snapshot),
            (PathBuf::from("m.json"), Some(7), true, false)
        );
        assert!(S::try_parse_from(["sync"]).is_err());
        assert!(S::try_parse_from(["sync", "--out", "m", "--from-version", "-1"]).is_err());
    }

    #[test]
    fn kinds_have_names() {
        assert_eq!(kind_name(SyncKind::Extended as i32), "extended");
        assert_eq!(kind_name(99), "unspecified");
    }
}
