//! The sled store: trees, value encoding, one atomic commit across trees, and durable sync.
//!
//! Values are JSON behind a one-byte format version, so a later format can be told apart.
//! Durability: sled's `flush` on Linux only calls `sync_file_range` (sled issue 1452), which
//! is not durable against power loss, so [`Store::sync`] also `fdatasync`s the database file.

pub mod keys;
#[cfg(test)]
mod keys_props;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::domain::instruction::InstructionRecord;
use crate::domain::notice::{NoticeRecord, RequestRecord};
use crate::error::{Error, Result};

const FORMAT_V1: u8 = 1;

/// The trees a commit can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TreeId {
    Notices = 0,
    Instructions = 1,
    Requests = 2,
    Outbox = 3,
    Unacked = 4,
    Timers = 5,
    CaseAccounts = 6,
    /// Subject key -> blacklist `Entry`.
    Blacklist = 7,
    /// Blacklist version (u64 BE) -> `BlacklistChange`.
    BlacklistLog = 8,
    /// Check sequence (u64 BE) -> `CheckRecord`.
    Checks = 9,
    /// Appeal id -> `Appeal`.
    Appeals = 10,
    /// Audit position (u64 BE) -> `AuditRecord`, a hash chain.
    Audit = 11,
    /// Counters kept exact in the same commits as the changes they count (i64 BE).
    Meta = 12,
}

const TREE_NAMES: [&str; 13] = [
    "notices",
    "instructions",
    "requests",
    "outbox",
    "unacked",
    "timers",
    "case_accounts",
    "blacklist",
    "blacklist_log",
    "checks",
    "appeals",
    "audit",
    "meta",
];

/// What a delivery-log entry tells the institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryKind {
    /// An instruction to act on and acknowledge.
    Instruction,
    /// The instruction is overdue: act now.
    OverdueReminder,
    /// The stop or freeze ended: lift it.
    Lapsed,
}

/// One entry of an institution's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub instruction_id: String,
    pub kind: DeliveryKind,
}

/// What a timer is for. Stored as one byte in its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    AnswerDue = 0,
    TermEnd = 1,
    RenewalReminder = 2,
    /// A blacklist entry's term ends; the timer's id is the subject key.
    ListingEnd = 3,
}

/// One change of the blacklist, as institutions replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistChange {
    pub version: u64,
    pub kind: crate::domain::blacklist::ChangeKind,
    pub subject: crate::domain::blacklist::Subject,
    pub effects: crate::domain::blacklist::Effects,
    pub expires_at: crate::domain::ids::Timestamp,
}

/// Who screened whom, when, and what they were told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub institution: String,
    pub at: crate::domain::ids::Timestamp,
    /// (subject key, listed) per subject asked about.
    pub answers: Vec<(String, bool)>,
}

impl TimerKind {
    pub fn from_byte(b: u8) -> Option<TimerKind> {
        match b {
            0 => Some(TimerKind::AnswerDue),
            1 => Some(TimerKind::TermEnd),
            2 => Some(TimerKind::RenewalReminder),
            3 => Some(TimerKind::ListingEnd),
            _ => None,
        }
    }
}

/// A timer as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub key: Vec<u8>,
    pub due_ms: i64,
    pub kind: Option<TimerKind>,
    pub instruction_id: String,
}

/// Writes staged for one atomic commit, readable before they are committed (so that later
/// commands of the same batch see earlier ones).
#[derive(Debug, Default)]
pub struct Writes {
    ops: Vec<(TreeId, Vec<u8>, Option<Vec<u8>>)>,
    /// (tree, key) -> index of the latest op on it.
    index: HashMap<(TreeId, Vec<u8>), usize>,
}

impl Writes {
    fn push(&mut self, tree: TreeId, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.index.insert((tree, key.clone()), self.ops.len());
        self.ops.push((tree, key, value));
    }
    pub fn put<V: Serialize>(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: &V) {
        self.push(tree, key.into(), Some(encode(value)));
    }
    pub fn put_raw(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.push(tree, key.into(), Some(value.into()));
    }
    pub fn remove(&mut self, tree: TreeId, key: impl Into<Vec<u8>>) {
        self.push(tree, key.into(), None);
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Drops every op from position `len` on (undoing a failed command's staging).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.ops.len() {
            return;
        }
        self.ops.truncate(len);
        self.index = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, (tree, key, _))| ((*tree, key.clone()), i))
            .collect();
    }
    /// The staged value of a key: `Some(None)` when staged for removal, `None` when untouched.
    pub fn staged(&self, tree: TreeId, key: &[u8]) -> Option<Option<&[u8]>> {
        let i = *self.index.get(&(tree, key.to_vec()))?;
        Some(self.ops[i].2.as_deref())
    }
}

pub struct Store {
    db: sled::Db,
    /// How many durable syncs have run (group commit makes this far fewer than writes).
    syncs: std::sync::atomic::AtomicU64,
    trees: Vec<sled::Tree>,
    /// The database file, kept open to fdatasync it after sled's flush.
    db_file: File,
    dir: PathBuf,
}

pub fn encode<V: Serialize>(value: &V) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    // Serialising our own plain data types cannot fail.
    serde_json::to_writer(&mut out, value).unwrap_or_default();
    out
}

pub fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| Error::Store(format!("corrupt value: {e}")))
        }
        Some((v, _)) => Err(Error::Store(format!("unknown value format {v}"))),
        None => Err(Error::Store("empty value".into())),
    }
}

/// sled's page cache. The store holds far more than this (ten million blacklist entries, a
/// million open instructions); the hub's memory stays bounded by the cache, not the data.
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// Opens sled, waiting briefly while a previous handle in this process (a hub that just
/// stopped, whose last tasks are still letting go) releases the directory's lock.
fn open_db(dir: &Path) -> Result<sled::Db> {
    let mut tries = 0;
    loop {
        match sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Err(sled::Error::Io(e)) if tries < 50 && e.to_string().contains("lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return Ok(other?),
        }
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("cannot create {}: {e}", dir.display())))?;
        let db = open_db(dir)?;
        let trees = TREE_NAMES
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<sled::Result<Vec<_>>>()?;
        let db_path = dir.join("db");
        let db_file = File::open(&db_path)
            .map_err(|e| Error::Store(format!("cannot open {}: {e}", db_path.display())))?;
        Ok(Store {
            db,
            syncs: Default::default(),
            trees,
            db_file,
            dir: dir.to_path_buf(),
        })
    }

    /// Free bytes (available to this process) on the store's filesystem.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        fs2::available_space(&self.dir)
    }

    /// Whether a write may go ahead: refuses with UNAVAILABLE when free space is below
    /// `reserve` bytes, so that the store never meets a full disk half-way through a write.
    /// Returns the free bytes when known (an unreadable figure does not stop writes).
    pub fn check_room(&self, reserve: u64) -> Result<Option<u64>> {
        if reserve == 0 {
            return Ok(None);
        }
        match self.free_bytes() {
            Ok(free) if free < reserve => Err(Error::Unavailable(format!(
                "the hub's disk is nearly full ({} MiB free, {} MiB kept in reserve): writes are \
                 refused until space is freed; nothing was changed, retry later",
                free >> 20,
                reserve >> 20
            ))),
            Ok(free) => Ok(Some(free)),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot read free disk space");
                Ok(None)
            }
        }
    }

    pub fn tree(&self, id: TreeId) -> &sled::Tree {
        &self.trees[id as usize]
    }

    /// A fresh, never reused number (sled persists its id generator).
    pub fn next_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Applies `writes` atomically across trees. Not yet durable: see [`Store::sync`].
    pub fn commit(&self, writes: &Writes) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut batches: Vec<sled::Batch> = (0..TREE_NAMES.len())
            .map(|_| sled::Batch::default())
            .collect();
        for (tree, key, value) in &writes.ops {
            match value {
                Some(v) => batches[*tree as usize].insert(key.as_slice(), v.as_slice()),
                None => batches[*tree as usize].remove(key.as_slice()),
            }
        }
        // The closure only applies prepared batches: sled may run it more than once.
        let result: std::result::Result<(), TransactionError<()>> =
            self.trees.as_slice().transaction(|trees| {
                for (tree, batch) in trees.iter().zip(&batches) {
                    tree.apply_batch(batch)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        result.map_err(|e| Error::Store(format!("commit failed: {e:?}")))
    }

    /// Makes every commit so far durable on stable storage.
    pub fn sync(&self) -> Result<()> {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.db.flush()?;
        self.db_file
            .sync_data()
            .map_err(|e| Error::Store(format!("fdatasync failed: {e}")))
    }

    pub fn sync_count(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn get<V: DeserializeOwned>(&self, tree: TreeId, key: &[u8]) -> Result<Option<V>> {
        match self.tree(tree).get(key)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn notice(&self, id: &str) -> Result<Option<NoticeRecord>> {
        self.get(TreeId::Notices, id.as_bytes())
    }

    pub fn instruction(&self, id: &str) -> Result<Option<InstructionRecord>> {
        self.get(TreeId::Instructions, id.as_bytes())
    }

    pub fn request(&self, agency: &str, request_id: &str) -> Result<Option<RequestRecord>> {
        self.get(TreeId::Requests, &keys::request(agency, request_id))
    }

    /// The highest sequence ever given to `institution`, 0 if none.
    pub fn last_sequence(&self, institution: &str) -> Result<u64> {
        let prefix = keys::institution_prefix(institution);
        match self.tree(TreeId::Outbox).scan_prefix(&prefix).next_back() {
            Some(entry) => Ok(keys::delivery_seq(&entry?.0).unwrap_or(0)),
            None => Ok(0),
        }
    }

    /// Unacknowledged instructions of `institution` at `priority` with
    /// `after < sequence <= upto`, in order, at most `limit`.
    pub fn unacked(
        &self,
        institution: &str,
        priority: u8,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let from = keys::unacked(institution, priority, after.saturating_add(1));
        let to = keys::unacked(institution, priority, upto);
        let mut out = Vec::new();
        for entry in self.tree(TreeId::Unacked).range(from..=to).take(limit) {
            let (k, v) = entry?;
            let seq = keys::delivery_seq(&k).unwrap_or(0);
            out.push((seq, String::from_utf8_lossy(&v).into_owned()));
        }
        Ok(out)
    }

    /// Delivery-log entries of `institution` with `after < sequence <= upto`, at most `limit`.
    pub fn outbox(
        &self,
        institution: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let from = keys::delivery(institution, after.saturating_add(1));
        let to = keys::delivery(institution, upto);
        let mut out = Vec::new();
        for entry in self.tree(TreeId::Outbox).range(from..=to).take(limit) {
            let (k, v) = entry?;
            out.push((keys::delivery_seq(&k).unwrap_or(0), decode(&v)?));
        }
        Ok(out)
    }

    /// Timers due at or before `upto_ms`, earliest first, at most `limit`.
    pub fn due_timers(&self, upto_ms: i64, limit: usize) -> Result<Vec<Timer>> {
        self.timers_between(0, upto_ms, limit)
    }

    /// Timers due in `from_ms..=to_ms`, earliest first, at most `limit`.
    pub fn timers_between(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<Vec<Timer>> {
        let from = (from_ms.max(0) as u64).to_be_bytes();
        let to = (to_ms.max(0) as u64).saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for entry in self.tree(TreeId::Timers).range(from..to).take(limit) {
            let (k, _) = entry?;
            if let Some((due_ms, kind, instruction_id)) = keys::parse_timer(&k) {
                out.push(Timer {
                    key: k.to_vec(),
                    due_ms,
                    kind: TimerKind::from_byte(kind),
                    instruction_id,
                });
            }
        }
        Ok(out)
    }

    /// When the earliest timer is due, if any.
    pub fn first_timer_due(&self) -> Result<Option<i64>> {
        Ok(match self.tree(TreeId::Timers).first()? {
            Some((k, _)) => keys::parse_timer(&k).map(|t| t.0),
            None => None,
        })
    }

    /// A counter from the `meta` tree, 0 if unset.
    pub fn counter(&self, name: &str) -> Result<i64> {
        Ok(self
            .tree(TreeId::Meta)
            .get(name.as_bytes())?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Instructions awaiting an answer, per institution (a scan of keys only).
    pub fn open_per_institution(&self) -> Result<std::collections::HashMap<String, i64>> {
        let mut out = std::collections::HashMap::new();
        for key in self.tree(TreeId::Unacked).iter().keys() {
            let key = key?;
            if let Some(end) = key.iter().position(|b| *b == 0) {
                *out.entry(String::from_utf8_lossy(&key[..end]).into_owned())
                    .or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// The newest blacklist version in the change log, 0 if none.
    pub fn blacklist_version(&self) -> Result<u64> {
        Ok(match self.tree(TreeId::BlacklistLog).last()? {
            Some((k, _)) => k.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0),
            None => 0,
        })
    }

    /// The oldest blacklist version still in the change log, if any.
    pub fn oldest_blacklist_version(&self) -> Result<Option<u64>> {
        Ok(match self.tree(TreeId::BlacklistLog).first()? {
            Some((k, _)) => k.as_ref().try_into().map(u64::from_be_bytes).ok(),
            None => None,
        })
    }

    /// Blacklist changes with `after < version <= upto`, at most `limit`.
    pub fn blacklist_changes(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<BlacklistChange>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let from = after.saturating_add(1).to_be_bytes();
        let to = upto.to_be_bytes();
        self.tree(TreeId::BlacklistLog)
            .range(from..=to)
            .take(limit)
            .map(|entry| decode(&entry?.1))
            .collect()
    }

    /// Blacklist entries after the subject key `after` (exclusive), at most `limit`, in key order.
    pub fn blacklist_entries_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<crate::domain::blacklist::Entry>> {
        let mut start = after.as_bytes().to_vec();
        if !start.is_empty() {
            start.push(0);
        }
        self.tree(TreeId::Blacklist)
            .range(start..)
            .take(limit)
            .map(|entry| decode(&entry?.1))
            .collect()
    }

    pub fn listing(&self, subject_key: &str) -> Result<Option<crate::domain::blacklist::Entry>> {
        self.get(TreeId::Blacklist, subject_key.as_bytes())
    }

    /// Every (institution, account, instruction id) of a case.
    pub fn case_instructions(
        &self,
        agency: &str,
        case: &str,
    ) -> Result<Vec<(String, String, String)>> {
        let prefix = keys::case_prefix(agency, case);
        let mut out = Vec::new();
        for entry in self.tree(TreeId::CaseAccounts).scan_prefix(&prefix) {
            let (k, _) = entry?;
            if let Some(t) = keys::parse_case_account(&k, prefix.len()) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The instruction ids on one account within a case.
    pub fn account_instructions(
        &self,
        agency: &str,
        case: &str,
        institution: &str,
        account: &str,
    ) -> Result<Vec<String>> {
        let prefix = keys::case_account_prefix(agency, case, institution, account);
        let mut out = Vec::new();
        for entry in self.tree(TreeId::CaseAccounts).scan_prefix(&prefix) {
            let (k, _) = entry?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Instructions in id order, starting after `after_id` (exclusive).
    pub fn instructions_after(
        &self,
        after_id: &str,
    ) -> impl Iterator<Item = Result<(String, InstructionRecord)>> + '_ {
        let start: Vec<u8> = if after_id.is_empty() {
            Vec::new()
        } else {
            let mut k = after_id.as_bytes().to_vec();
            k.push(0);
            k
        };
        self.tree(TreeId::Instructions).range(start..).map(|entry| {
            let (k, v) = entry?;
            Ok((String::from_utf8_lossy(&k).into_owned(), decode(&v)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_unknown_formats_are_refused() {
        let bytes = encode(&vec![1u32, 2, 3]);
        assert_eq!(decode::<Vec<u32>>(&bytes).unwrap(), vec![1, 2, 3]);
        assert!(decode::<Vec<u32>>(&[9, b'[', b']']).is_err());
        assert!(decode::<Vec<u32>>(&[]).is_err());
    }

    #[test]
    fn commits_are_visible_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut w = Writes::default();
            let entry = OutboxEntry {
                instruction_id: "I1".into(),
                kind: DeliveryKind::Instruction,
            };
            w.put(TreeId::Outbox, keys::delivery("ICBC", 7), &entry);
            w.put_raw(TreeId::Unacked, keys::unacked("ICBC", 0, 7), "I1");
            w.put_raw(
                TreeId::Timers,
                keys::timer(500, TimerKind::TermEnd as u8, "I1"),
                Vec::new(),
            );
            store.commit(&w).unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_sequence("ICBC").unwrap(), 7);
        assert_eq!(store.last_sequence("CCB").unwrap(), 0);
        assert_eq!(
            store.unacked("ICBC", 0, 0, 10, 100).unwrap(),
            vec![(7, "I1".to_string())]
        );
        assert!(store.unacked("ICBC", 0, 7, 10, 100).unwrap().is_empty());
        assert!(store.unacked("ICBC", 1, 0, 10, 100).unwrap().is_empty());
        assert_eq!(
            store.outbox("ICBC", 0, 10, 10).unwrap()[0].1.instruction_id,
            "I1"
        );
        assert_eq!(store.first_timer_due().unwrap(), Some(500));
        assert!(store.due_timers(499, 10).unwrap().is_empty());
        let due = store.due_timers(500, 10).unwrap();
        assert_eq!(
            (due[0].kind, due[0].instruction_id.as_str()),
            (Some(TimerKind::TermEnd), "I1")
        );
    }
}
