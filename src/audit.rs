//! The audit trail: a hash chain of records, one per command that changed state or was
//! refused by the rules, written in the same commit as the change itself.
//!
//! Each record carries the hash of the one before, and its own hash over that and its fields,
//! so changing, removing or reordering any record breaks the chain at that point; [`verify`]
//! finds the first broken link.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::ids::Timestamp;
use crate::error::Result;
use crate::store::{Store, TreeId, decode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditItem {
    pub kind: String,
    pub id: String,
    pub detail: String,
}

impl AuditItem {
    pub fn new(kind: &str, id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.into(),
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub items: Vec<AuditItem>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of the chain before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// The record's hash: SHA-256 over the previous hash and every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash.clear();
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(serde_json::to_vec(&unhashed).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// A sealed record following `(prev_seq, prev_hash)`.
    pub fn seal(
        prev: (u64, &str),
        at: Timestamp,
        actor: &str,
        action: &str,
        outcome: &str,
        items: Vec<AuditItem>,
    ) -> AuditRecord {
        let mut r = AuditRecord {
            seq: prev.0 + 1,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            items,
            prev_hash: prev.1.to_owned(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }
}

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        count: u64,
        head: String,
    },
    Broken {
        at_seq: u64,
        problem: String,
        checked: u64,
    },
}

/// Walks the chain as stored, in position order, and reports the first broken link.
pub fn verify(store: &Store) -> Result<Verdict> {
    let mut prev_seq = 0u64;
    let mut prev_hash = GENESIS.to_owned();
    for entry in store.tree(TreeId::Audit).iter() {
        let (key, value) = entry?;
        let position = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
        let expected = prev_seq + 1;
        let broken = |problem: String| Verdict::Broken {
            at_seq: expected,
            problem,
            checked: prev_seq,
        };
        if position != expected {
            return Ok(broken(format!(
                "record {expected} is missing (the next stored is {position})"
            )));
        }
        let record: AuditRecord = match decode(&value) {
            Ok(r) => r,
            Err(e) => return Ok(broken(format!("record {expected} cannot be read: {e}"))),
        };
        if record.seq != position {
            return Ok(broken(format!(
                "the record at position {position} says it is record {}: moved",
                record.seq
            )));
        }
        if record.prev_hash != prev_hash {
            return Ok(broken(format!(
                "record {position} does not follow record {prev_seq} (previous hash differs)"
            )));
        }
        if record.compute_hash() != record.hash {
            return Ok(broken(format!(
                "record {position} was changed after it was written (its hash does not match)"
            )));
        }
        prev_seq = position;
        prev_hash = record.hash;
    }
    Ok(Verdict::Intact {
        count: prev_seq,
        head: prev_hash,
    })
}

/// The last record's position and hash, to continue the chain from.
pub fn head(store: &Store) -> Result<(u64, String)> {
    match store.tree(TreeId::Audit).last()? {
        Some((_, value)) => {
            let r: AuditRecord = decode(&value)?;
            Ok((r.seq, r.hash))
        }
        None => Ok((0, GENESIS.to_owned())),
    }
}

/// Records after `after_seq`, at most `limit`.
pub fn records_after(store: &Store, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>> {
    store
        .tree(TreeId::Audit)
        .range(after_seq.saturating_add(1).to_be_bytes()..)
        .take(limit)
        .map(|e| decode(&e?.1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Writes;

    fn chain(store: &Store, n: u64) {
        let mut prev = (0, GENESIS.to_owned());
        let mut w = Writes::default();
        for i in 0..n {
            let r = AuditRecord::seal(
                (prev.0, &prev.1),
                Timestamp(i as i64),
                "police:PSB",
                "submit_notice",
                "ok",
                vec![AuditItem::new("notice", format!("N{i}"), "accepted")],
            );
            w.put(TreeId::Audit, r.seq.to_be_bytes().to_vec(), &r);
            prev = (r.seq, r.hash.clone());
        }
        store.commit(&w).unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_every_tampering_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        chain(&store, 6);
        let Verdict::Intact { count, head: h } = verify(&store).unwrap() else {
            panic!("intact expected")
        };
        assert_eq!((count, h), (6, head(&store).unwrap().1));
        let tree = store.tree(TreeId::Audit);
        let key = |n: u64| n.to_be_bytes().to_vec();

        // Changed: a field edited, hash left as it was.
        let original = tree.get(key(3)).unwrap().unwrap();
        let mut r: AuditRecord = decode(&original).unwrap();
        r.actor = "police:SOMEONE-ELSE".into();
        tree.insert(key(3), crate::store::encode(&r)).unwrap();
        assert!(
            matches!(verify(&store).unwrap(), Verdict::Broken { at_seq: 3, ref problem, .. } if problem.contains("changed"))
        );
        // Changed and re-hashed: the next record no longer follows it.
        r.hash = r.compute_hash();
        tree.insert(key(3), crate::store::encode(&r)).unwrap();
        assert!(
            matches!(verify(&store).unwrap(), Verdict::Broken { at_seq: 4, ref problem, .. } if problem.contains("does not follow"))
        );
        tree.insert(key(3), original).unwrap();

        // Swapped.
        let (a, b) = (
            tree.get(key(4)).unwrap().unwrap(),
            tree.get(key(5)).unwrap().unwrap(),
        );
        tree.insert(key(4), b.clone()).unwrap();
        tree.insert(key(5), a.clone()).unwrap();
        assert!(
            matches!(verify(&store).unwrap(), Verdict::Broken { at_seq: 4, ref problem, .. } if problem.contains("moved"))
        );
        tree.insert(key(4), a).unwrap();
        tree.insert(key(5), b).unwrap();
        assert!(matches!(verify(&store).unwrap(), Verdict::Intact { .. }));

        // Removed.
        tree.remove(key(2)).unwrap();
        assert!(
            matches!(verify(&store).unwrap(), Verdict::Broken { at_seq: 2, ref problem, .. } if problem.contains("missing"))
        );
    }
}
