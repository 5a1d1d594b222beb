//! The sled store: trees, value encoding, one atomic commit across trees, and durable sync.
//!
//! Values are JSON behind a one-byte format version, so a later format can be told apart.
//! Durability: sled's `flush` on Linux only calls `sync_file_range` (sled issue 1452), which
//! is not durable against power loss, so [`Store::sync`] also `fdatasync`s the database file.

pub mod keys;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
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
}

const TREE_NAMES: [&str; 5] = ["notices", "instructions", "requests", "outbox", "unacked"];

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

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("cannot create {}: {e}", dir.display())))?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
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
        })
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

    /// Unacknowledged instructions of `institution` with `after < sequence <= upto`, in order,
    /// at most `limit`.
    pub fn unacked(
        &self,
        institution: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let from = keys::delivery(institution, after.saturating_add(1));
        let to = keys::delivery(institution, upto);
        let mut out = Vec::new();
        for entry in self.tree(TreeId::Unacked).range(from..=to).take(limit) {
            let (k, v) = entry?;
            let seq = keys::delivery_seq(&k).unwrap_or(0);
            out.push((seq, String::from_utf8_lossy(&v).into_owned()));
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
            w.put_raw(TreeId::Outbox, keys::delivery("ICBC", 7), "I1");
            w.put_raw(TreeId::Unacked, keys::delivery("ICBC", 7), "I1");
            store.commit(&w).unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_sequence("ICBC").unwrap(), 7);
        assert_eq!(store.last_sequence("CCB").unwrap(), 0);
        assert_eq!(
            store.unacked("ICBC", 0, 10, 100).unwrap(),
            vec![(7, "I1".to_string())]
        );
        assert!(store.unacked("ICBC", 7, 10, 100).unwrap().is_empty());
    }
}
