//! An institution's local mirror of the account blacklist, kept by `bank sync` from the
//! `SyncBlacklist` stream and read by `bank check --mirror`.
//!
//! The mirror holds the entries in force, keyed by (document type, document number), each
//! with its effects, the end of its term and the blacklist version of its last change.
//! [`apply`] folds one stream message into it; it is pure, so that the rules (a snapshot
//! replaces everything, a change older than the entry is ignored) are tested without a hub.
//!
//! The file is JSON, written atomically (`FILE.tmp`, fsync, rename, fsync of the directory):
//!
//! ```json
//! {"version": 12, "synced_at": "2026-11-28T08:40:00Z",
//!  "entries": [{"document_type": "resident-id", "document_number": "11010519491231002X",
//!               "effects": {"bank_non_counter_suspended": true,
//!                           "payment_accounts_suspended": true, "no_new_accounts": true},
//!               "listed_until": "2031-11-28T08:40:00Z", "version": 12}]}
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};

use super::render::DocTypeName;
use super::time;
use crate::domain::blacklist;
use crate::proto::stophub::bank::v1::{CheckResult, SyncBlacklistResponse, SyncKind};
use crate::proto::stophub::common::v1 as pb;

/// A subject: its document type and its normalised document number.
pub type Key = (DocTypeName, String);

/// One entry in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub effects: pb::Effects,
    pub listed_until: Option<Timestamp>,
    /// The blacklist version of the entry's last change.
    pub version: u64,
}

/// The blacklist as an institution mirrors it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mirror {
    /// The version to resume after: the snapshot's (`SNAPSHOT_BEGIN`) or the highest change
    /// applied since. Snapshot entries do not move it: a snapshot "reflects at least" its
    /// version, so an entry in it may be newer than changes still to come for others.
    pub version: u64,
    /// When the file was last written.
    pub synced_at: Option<Timestamp>,
    pub entries: BTreeMap<Key, Entry>,
    /// Between `SNAPSHOT_BEGIN` and `SNAPSHOT_END`: the entries are incomplete, so the mirror
    /// is not saved, and a new stream must start with a fresh snapshot.
    pub in_snapshot: bool,
}

/// What [`apply`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A snapshot started: every entry was dropped.
    SnapshotBegun,
    /// A snapshot entry was stored.
    SnapshotEntry,
    /// The snapshot is complete, with this many entries in force.
    SnapshotEnded { entries: usize },
    /// The hub has sent everything up to the current version: the mirror is current.
    CaughtUp,
    /// A listing or extension was stored.
    Upserted,
    /// A delisting or lapse removed the entry.
    Removed,
    /// A delisting or lapse of a subject the mirror does not hold: nothing to do.
    Absent,
    /// The mirror's entry is already at this version or newer: the message was ignored.
    Stale { stored: u64 },
    /// The message cannot be used (unknown kind, no subject, unknown document type).
    Ignored(&'static str),
}

/// The document number as the hub normalises it: trimmed, full-width letters and digits
/// made ASCII, upper case.
pub fn normalise_number(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c)
            }
            _ => c,
        })
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Checks a document number by the hub's own rules (length, alphabet, check character), so
/// that a mistyped number is refused rather than answered `not listed`.
pub fn validate(doc_type: DocTypeName, number: &str) -> Result<(), String> {
    let doc_type = match doc_type {
        DocTypeName::ResidentId => blacklist::DocumentType::ResidentId,
        DocTypeName::Passport => blacklist::DocumentType::Passport,
        DocTypeName::Uscc => blacklist::DocumentType::CreditCode,
    };
    blacklist::Subject::parse(doc_type, number).map(drop)
}

fn key(subject: Option<&pb::SubjectRef>) -> Result<Key, &'static str> {
    let s = subject.ok_or("no subject")?;
    let doc_type = DocTypeName::from_proto(s.document_type).ok_or("unknown document type")?;
    Ok((doc_type, normalise_number(&s.document_number)))
}

/// Folds one `SyncBlacklist` message into the mirror: `SNAPSHOT_BEGIN` drops every entry;
/// `SNAPSHOT_ENTRY`, `LISTED` and `EXTENDED` store the entry; `DELISTED` and `LAPSED` remove
/// it. A message about an entry the mirror already holds at the same or a newer version is
/// ignored. Changes (not snapshot entries) raise the mirror's version.
pub fn apply(mirror: &mut Mirror, r: &SyncBlacklistResponse) -> Applied {
    let kind = match SyncKind::try_from(r.kind) {
        Ok(SyncKind::Unspecified) | Err(_) => return Applied::Ignored("unknown kind"),
        Ok(kind) => kind,
    };
    match kind {
        SyncKind::SnapshotBegin => {
            mirror.entries.clear();
            mirror.in_snapshot = true;
            mirror.version = r.version;
            return Applied::SnapshotBegun;
        }
        SyncKind::SnapshotEnd => {
            mirror.in_snapshot = false;
            return Applied::SnapshotEnded {
                entries: mirror.entries.len(),
            };
        }
        SyncKind::CaughtUp => {
            mirror.version = mirror.version.max(r.version);
            return Applied::CaughtUp;
        }
        SyncKind::SnapshotEntry => {}
        _ => mirror.version = mirror.version.max(r.version),
    }
    let key = match key(r.subject.as_ref()) {
        Ok(key) => key,
        Err(why) => return Applied::Ignored(why),
    };
    match mirror.entries.get(&key) {
        Some(e) if e.version >= r.version => return Applied::Stale { stored: e.version },
        _ => {}
    }
    match kind {
        SyncKind::Delisted | SyncKind::Lapsed => match mirror.entries.remove(&key) {
            Some(_) => Applied::Removed,
            None => Applied::Absent,
        },
        _ => {
            let entry = Entry {
                effects: r.effects.unwrap_or_default(),
                listed_until: r.listed_until,
                version: r.version,
            };
            mirror.entries.insert(key, entry);
            if kind == SyncKind::SnapshotEntry {
                Applied::SnapshotEntry
            } else {
                Applied::Upserted
            }
        }
    }
}

impl Mirror {
    /// The `from_version` to ask for: the mirror's version, or 0 (a fresh snapshot) when a
    /// snapshot was cut short.
    pub fn resume_from(&self) -> u64 {
        if self.in_snapshot { 0 } else { self.version }
    }

    /// The answer the hub would give about `subject` at `now`: listed while an entry is in
    /// force and its term has not ended.
    pub fn check(&self, subject: &pb::SubjectRef, now: &Timestamp) -> CheckResult {
        let normalised = pb::SubjectRef {
            document_type: subject.document_type,
            document_number: normalise_number(&subject.document_number),
        };
        let in_force = key(Some(&normalised))
            .ok()
            .and_then(|k| self.entries.get(&k))
            .filter(|e| {
                e.listed_until
                    .is_none_or(|t| (t.seconds, t.nanos) > (now.seconds, now.nanos))
            });
        CheckResult {
            subject: Some(normalised),
            listed: in_force.is_some(),
            effects: in_force.map(|e| e.effects),
            listed_until: in_force.and_then(|e| e.listed_until),
        }
    }

    /// Reads a mirror file; `None` when there is none.
    pub fn load(path: &Path) -> anyhow::Result<Option<Mirror>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file: MirrorFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid mirror file", path.display()))?;
        Mirror::from_file(file)
            .map(Some)
            .with_context(|| format!("{} is not a valid mirror file", path.display()))
    }

    /// Writes the mirror to `path` atomically, stamped `synced_at = now`: `path.tmp` is
    /// written and synced, then renamed over `path`, and the directory is synced.
    pub fn save(&mut self, path: &Path, now: Timestamp) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.in_snapshot,
            "the snapshot is incomplete; {} left as it was",
            path.display()
        );
        self.synced_at = Some(now);
        let mut bytes = serde_json::to_vec_pretty(&self.to_file())?;
        bytes.push(b'\n');
        let tmp = tmp_path(path);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()
        };
        write().with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        // Make the rename itself durable.
        #[cfg(unix)]
        {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot sync {}", dir.display()))?;
        }
        Ok(())
    }

    fn to_file(&self) -> MirrorFile {
        MirrorFile {
            version: self.version,
            synced_at: self.synced_at.as_ref().map(time::format),
            entries: self
                .entries
                .iter()
                .map(|((doc_type, number), e)| FileEntry {
                    document_type: doc_type.name().to_owned(),
                    document_number: number.clone(),
                    effects: FileEffects {
                        bank_non_counter_suspended: e.effects.bank_non_counter_suspended,
                        payment_accounts_suspended: e.effects.payment_accounts_suspended,
                        no_new_accounts: e.effects.no_new_accounts,
                    },
                    listed_until: e.listed_until.as_ref().map(time::format),
                    version: e.version,
                })
                .collect(),
        }
    }

    fn from_file(file: MirrorFile) -> anyhow::Result<Mirror> {
        let time = |t: Option<&String>, what: &str| {
            t.map(|t| time::parse(t))
                .transpose()
                .map_err(anyhow::Error::msg)
                .context(what.to_owned())
        };
        let mut entries = BTreeMap::new();
        for (n, e) in file.entries.into_iter().enumerate() {
            let doc_type = DocTypeName::parse(&e.document_type)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("entries[{n}].document_type"))?;
            let entry = Entry {
                effects: pb::Effects {
                    bank_non_counter_suspended: e.effects.bank_non_counter_suspended,
                    payment_accounts_suspended: e.effects.payment_accounts_suspended,
                    no_new_accounts: e.effects.no_new_accounts,
                },
                listed_until: time(
                    e.listed_until.as_ref(),
                    &format!("entries[{n}].listed_until"),
                )?,
                version: e.version,
            };
            entries.insert((doc_type, normalise_number(&e.document_number)), entry);
        }
        Ok(Mirror {
            version: file.version,
            synced_at: time(file.synced_at.as_ref(), "synced_at")?,
            entries,
            in_snapshot: false,
        })
    }
}

/// `FILE.tmp`, next to `FILE`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The mirror file, as written.
#[derive(Debug, Serialize, Deserialize)]
struct MirrorFile {
    version: u64,
    synced_at: Option<String>,
    entries: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    document_type: String,
    document_number: String,
    effects: FileEffects,
    listed_until: Option<String>,
    version: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct FileEffects {
    bank_non_counter_suspended: bool,
    payment_accounts_suspended: bool,
    no_new_accounts: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11010519491231002X";
    const USCC: &str = "91350100M000100Y43";

    fn subject(doc_type: pb::DocumentType, number: &str) -> pb::SubjectRef {
        pb::SubjectRef {
            document_type: doc_type as i32,
            document_number: number.into(),
        }
    }

    fn all_effects() -> pb::Effects {
        pb::Effects {
            bank_non_counter_suspended: true,
            payment_accounts_suspended: true,
            no_new_accounts: true,
        }
    }

    fn msg(kind: SyncKind, version: u64, number: &str, until_s: i64) -> SyncBlacklistResponse {
        SyncBlacklistResponse {
            kind: kind as i32,
            version,
            subject: (!number.is_empty()).then(|| subject(pb::DocumentType::ResidentId, number)),
            effects: (!number.is_empty()).then(all_effects),
            listed_until: (!number.is_empty()).then_some(Timestamp {
                seconds: until_s,
                nanos: 0,
            }),
        }
    }

    fn marker(kind: SyncKind, version: u64) -> SyncBlacklistResponse {
        msg(kind, version, "", 0)
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    fn id_key(number: &str) -> Key {
        (DocTypeName::ResidentId, number.to_owned())
    }

    #[test]
    fn a_snapshot_replaces_everything() {
        let mut m = Mirror::default();
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Listed, 3, "OLD1", 100)),
            Applied::Upserted
        );
        assert_eq!(
            apply(&mut m, &marker(SyncKind::SnapshotBegin, 10)),
            Applied::SnapshotBegun
        );
        assert!(m.entries.is_empty() && m.in_snapshot);
        assert_eq!(m.resume_from(), 0, "a cut-short snapshot starts over");
        assert_eq!(
            apply(&mut m, &msg(SyncKind::SnapshotEntry, 7, ID, 100)),
            Applied::SnapshotEntry
        );
        // An entry newer than the snapshot's version does not move the mirror's version.
        assert_eq!(
            apply(&mut m, &msg(SyncKind::SnapshotEntry, 12, "E2", 100)),
            Applied::SnapshotEntry
        );
        assert_eq!(
            apply(&mut m, &marker(SyncKind::SnapshotEnd, 12)),
            Applied::SnapshotEnded { entries: 2 }
        );
        assert!(!m.in_snapshot);
        assert_eq!((m.version, m.resume_from()), (10, 10));
        assert_eq!(m.entries[&id_key(ID)].version, 7);
        assert!(!m.entries.contains_key(&id_key("OLD1")));
    }

    #[test]
    fn changes_apply_by_version() {
        let mut m = Mirror::default();
        apply(&mut m, &marker(SyncKind::SnapshotBegin, 10));
        apply(&mut m, &msg(SyncKind::SnapshotEntry, 12, ID, 100));
        apply(&mut m, &marker(SyncKind::SnapshotEnd, 10));
        // The change the snapshot already reflected comes again: ignored, but the version
        // moves on.
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Listed, 11, ID, 50)),
            Applied::Stale { stored: 12 }
        );
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Extended, 12, ID, 60)),
            Applied::Stale { stored: 12 }
        );
        assert_eq!(m.entries[&id_key(ID)].listed_until, Some(at(100)));
        assert_eq!(m.version, 12);
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Extended, 13, ID, 200)),
            Applied::Upserted
        );
        assert_eq!(m.entries[&id_key(ID)].listed_until, Some(at(200)));
        assert_eq!(m.entries[&id_key(ID)].version, 13);
        // A stale removal leaves the entry; a newer one removes it.
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Delisted, 13, ID, 0)),
            Applied::Stale { stored: 13 }
        );
        assert!(m.entries.contains_key(&id_key(ID)));
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Lapsed, 14, ID, 0)),
            Applied::Removed
        );
        assert!(m.entries.is_empty());
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Delisted, 15, ID, 0)),
            Applied::Absent
        );
        assert_eq!(m.version, 15);
        // Listed again after removal: a fresh entry.
        assert_eq!(
            apply(&mut m, &msg(SyncKind::Listed, 16, ID, 300)),
            Applied::Upserted
        );
        assert_eq!(m.version, 16);
        // The mirror's version never goes back.
        apply(&mut m, &msg(SyncKind::Listed, 4, "OTHER", 300));
        assert_eq!(m.version, 16);
    }

    #[test]
    fn unusable_messages_are_ignored() {
        let mut m = Mirror::default();
        let mut unknown = msg(SyncKind::Listed, 5, ID, 1);
        unknown.kind = 99;
        assert_eq!(apply(&mut m, &unknown), Applied::Ignored("unknown kind"));
        assert_eq!(
            apply(&mut m, &marker(SyncKind::Unspecified, 5)),
            Applied::Ignored("unknown kind")
        );
        assert_eq!(
            apply(&mut m, &marker(SyncKind::Listed, 6)),
            Applied::Ignored("no subject")
        );
        let mut odd = msg(SyncKind::Listed, 7, ID, 1);
        odd.subject = Some(pb::SubjectRef {
            document_type: 42,
            document_number: ID.into(),
        });
        assert_eq!(
            apply(&mut m, &odd),
            Applied::Ignored("unknown document type")
        );
        assert!(m.entries.is_empty());
        assert_eq!(m.version, 7, "an unusable change is still a version passed");
    }

    #[test]
    fn checks_normalise_and_respect_the_term() {
        let mut m = Mirror::default();
        apply(&mut m, &msg(SyncKind::Listed, 1, ID, 1_000));
        let r = m.check(
            &subject(
                pb::DocumentType::ResidentId,
                " １１０１０５１９４９１２３１００２x ",
            ),
            &at(999),
        );
        assert!(r.listed);
        assert_eq!(r.subject.unwrap().document_number, ID);
        assert_eq!(r.effects, Some(all_effects()));
        assert_eq!(r.listed_until, Some(at(1_000)));
        // The term has ended (the lapse has not reached the mirror yet): not listed.
        let r = m.check(&subject(pb::DocumentType::ResidentId, ID), &at(1_000));
        assert!(!r.listed && r.effects.is_none() && r.listed_until.is_none());
        // Same number, another document type.
        assert!(
            !m.check(&subject(pb::DocumentType::Passport, ID), &at(0))
                .listed
        );
        assert_eq!(normalise_number("ｅ１２３４５６７８"), "E12345678");
    }

    #[test]
    fn numbers_are_validated_like_the_hub_does() {
        assert!(validate(DocTypeName::ResidentId, ID).is_ok());
        assert!(validate(DocTypeName::ResidentId, "11010519491231002x").is_ok());
        assert!(validate(DocTypeName::Uscc, USCC).is_ok());
        assert!(validate(DocTypeName::Passport, "E12345678").is_ok());
        let err = validate(DocTypeName::ResidentId, "110105194912310021").unwrap_err();
        assert!(err.contains("check character"), "{err}");
        assert!(validate(DocTypeName::Uscc, "91350100M000100Y44").is_err());
        assert!(validate(DocTypeName::Passport, "E1").is_err());
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.json");
        assert_eq!(Mirror::load(&path).unwrap(), None);
        let mut m = Mirror::default();
        apply(&mut m, &marker(SyncKind::SnapshotBegin, 4));
        apply(&mut m, &msg(SyncKind::SnapshotEntry, 3, ID, 1_795_849_200));
        let mut unit = msg(SyncKind::SnapshotEntry, 4, USCC, 1_795_849_200);
        unit.subject = Some(subject(pb::DocumentType::UnifiedSocialCreditCode, USCC));
        unit.effects = Some(pb::Effects {
            no_new_accounts: true,
            ..Default::default()
        });
        unit.listed_until = None;
        apply(&mut m, &unit);
        // An incomplete snapshot is never written.
        assert!(m.save(&path, at(5)).is_err());
        assert!(!path.exists());
        apply(&mut m, &marker(SyncKind::SnapshotEnd, 4));
        m.save(&path, at(1_795_849_260)).unwrap();
        assert!(!dir.path().join("mirror.json.tmp").exists());
        let loaded = Mirror::load(&path).unwrap().unwrap();
        assert_eq!(loaded, m);
        assert_eq!(loaded.synced_at, Some(at(1_795_849_260)));
        // The documented format.
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["version"], 4);
        assert_eq!(v["synced_at"], "2026-11-28T07:01:00Z");
        assert_eq!(v["entries"][0]["document_type"], "resident-id");
        assert_eq!(v["entries"][0]["document_number"], ID);
        assert_eq!(v["entries"][0]["listed_until"], "2026-11-28T07:00:00Z");
        assert_eq!(
            v["entries"][0]["effects"]["payment_accounts_suspended"],
            true
        );
        assert_eq!(v["entries"][1]["document_type"], "uscc");
        assert_eq!(v["entries"][1]["listed_until"], serde_json::Value::Null);
        assert_eq!(v["entries"][1]["version"], 4);
        // Saving again replaces the file whole.
        apply(&mut m, &msg(SyncKind::Delisted, 5, ID, 0));
        m.save(&path, at(1_795_849_320)).unwrap();
        let loaded = Mirror::load(&path).unwrap().unwrap();
        assert_eq!((loaded.version, loaded.entries.len()), (5, 1));
    }

    #[test]
    fn bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        for (text, needle) in [
            ("not json", "not a valid mirror file"),
            (
                r#"{"version": 1, "synced_at": null, "entries": [{"document_type": "licence",
                   "document_number": "1", "effects": {}, "listed_until": null, "version": 1}]}"#,
                "entries[0].document_type",
            ),
            (
                r#"{"version": 1, "synced_at": "yesterday", "entries": []}"#,
                "synced_at",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", Mirror::load(&path).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert_eq!(tmp_path(Path::new("a/m.json")), Path::new("a/m.json.tmp"));
    }
}
