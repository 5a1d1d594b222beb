//! The writer's blacklist transitions: list, extend, delist, lapse, appeals, and check
//! records. Each change gets the next blacklist version and a change-log entry in the same
//! commit, so a syncing institution can replay exactly what it missed.

use sha2::{Digest, Sha256};

use super::writer::{Batch, Writer};
use super::{AppealDecided, Listed};
use crate::audit::AuditItem;
use crate::domain::blacklist::{
    self, Appeal, AppealState, ChangeKind, Entry, ListingState, NewListing, Subject,
};
use crate::domain::notice::RequestRecord;
use crate::error::{Error, Result};
use crate::store::{BlacklistChange, CheckRecord, TimerKind, TreeId, keys};

fn hash<T: serde::Serialize>(value: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}

impl Writer {
    fn listing(&self, batch: &Batch, subject: &Subject) -> Result<Option<Entry>> {
        batch.read(&self.store, TreeId::Blacklist, subject.key().as_bytes())
    }

    /// Stages `entry` as the next blacklist version, with its change-log entry.
    fn stage_change(&self, batch: &mut Batch, mut entry: Entry, kind: ChangeKind) -> Entry {
        let version = batch.blacklist_version.unwrap_or(self.blacklist_version) + 1;
        batch.blacklist_version = Some(version);
        entry.version = version;
        batch
            .writes
            .put(TreeId::Blacklist, entry.subject.key().as_bytes(), &entry);
        let change = BlacklistChange {
            version,
            kind,
            subject: entry.subject.clone(),
            effects: entry.effects,
            expires_at: entry.expires_at,
        };
        batch.writes.put(
            TreeId::BlacklistLog,
            version.to_be_bytes().to_vec(),
            &change,
        );
        // Keep a bounded log: older changes are served as a fresh snapshot instead.
        if let Some(old) = version.checked_sub(self.config.blacklist_log_retain) {
            batch
                .writes
                .remove(TreeId::BlacklistLog, old.to_be_bytes().to_vec());
        }
        batch.must_sync = true;
        batch.blacklist_delta += match kind {
            ChangeKind::Listed => 1,
            ChangeKind::Extended => 0,
            ChangeKind::Delisted | ChangeKind::Lapsed => -1,
        };
        let count = self.blacklist_in_force + batch.blacklist_delta;
        batch.writes.put_raw(
            TreeId::Meta,
            super::BLACKLIST_IN_FORCE.as_bytes().to_vec(),
            count.to_be_bytes().to_vec(),
        );
        batch.audit_items.push(AuditItem::new(
            "blacklist",
            entry.subject.key(),
            format!(
                "{kind:?} (v{version}) under {} until {}, by {} for case {}",
                entry.basis,
                crate::domain::policy::rfc3339(entry.expires_at),
                entry.listed_by,
                entry.case_reference
            ),
        ));
        tracing::info!(subject = %entry.subject.masked(), ?kind, version, "blacklist changed");
        entry
    }

    /// An earlier identical request's target, or a refusal for a reused request id.
    fn seen_request(
        &self,
        batch: &Batch,
        who: &str,
        request_id: &str,
        payload: &str,
    ) -> Result<Option<String>> {
        let key = keys::request(who, request_id);
        match batch.read::<RequestRecord>(&self.store, TreeId::Requests, &key)? {
            None => Ok(None),
            Some(r) if r.payload_hash == payload => Ok(Some(r.notice_id)),
            Some(r) => Err(Error::AlreadyExists(format!(
                "request_id: {request_id:?} was already used by {who} for {} with a different payload",
                r.notice_id
            ))),
        }
    }

    fn remember_request(
        &self,
        batch: &mut Batch,
        who: &str,
        request_id: &str,
        payload: String,
        target: &str,
    ) {
        batch.writes.put(
            TreeId::Requests,
            keys::request(who, request_id),
            &RequestRecord {
                notice_id: target.to_owned(),
                payload_hash: payload,
            },
        );
    }

    pub(super) fn list_subject(
        &mut self,
        agency: &str,
        new: &NewListing,
        batch: &mut Batch,
    ) -> Result<Listed> {
        let payload = hash(&(
            new.subject.key(),
            &new.subject_name,
            &new.basis,
            &new.case_reference,
        ));
        if self
            .seen_request(batch, agency, &new.request_id, &payload)?
            .is_some()
        {
            batch.must_sync = true;
            let entry = self
                .listing(batch, &new.subject)?
                .ok_or_else(|| Error::Store("a replayed listing is missing".into()))?;
            return Ok(Listed {
                entry,
                extended: false,
                replayed: true,
            });
        }
        let now = self.clock.now();
        let existing = self.listing(batch, &new.subject)?;
        let (entry, kind) =
            blacklist::list(existing.as_ref(), new, agency, &self.config.bases, now)?;
        let entry = self.stage_change(batch, entry, kind);
        batch.timer(
            entry.expires_at,
            TimerKind::ListingEnd,
            &entry.subject.key(),
            Some(entry.expires_at),
        );
        self.remember_request(
            batch,
            agency,
            &new.request_id,
            payload,
            &entry.subject.key(),
        );
        Ok(Listed {
            entry,
            extended: kind == ChangeKind::Extended,
            replayed: false,
        })
    }

    pub(super) fn delist_subject(
        &mut self,
        agency: &str,
        subject: &Subject,
        reason: &str,
        batch: &mut Batch,
    ) -> Result<Listed> {
        let entry = self.listing(batch, subject)?.ok_or_else(|| {
            Error::NotFound(format!(
                "subject: {} has no blacklist entry",
                subject.masked()
            ))
        })?;
        if entry.listed_by != agency {
            return Err(Error::PermissionDenied(format!(
                "only the listing agency ({}) may delist {}",
                entry.listed_by,
                subject.masked()
            )));
        }
        let next = blacklist::remove(&entry, ListingState::Delisted, reason, self.clock.now())?;
        let entry = self.stage_change(batch, next, ChangeKind::Delisted);
        Ok(Listed {
            entry,
            extended: false,
            replayed: false,
        })
    }

    /// The listing-end timer fired: lapse the entry if its term really ended (a later
    /// extension leaves this timer behind).
    pub(super) fn end_listing(&mut self, subject_key: &str, batch: &mut Batch) -> Result<()> {
        let Some(subject) = Subject::from_key(subject_key) else {
            return Ok(());
        };
        let Some(entry) = self.listing(batch, &subject)? else {
            return Ok(());
        };
        if let Ok(next) =
            blacklist::remove(&entry, ListingState::Lapsed, "term ended", self.clock.now())
        {
            self.stage_change(batch, next, ChangeKind::Lapsed);
        }
        Ok(())
    }

    pub(super) fn record_appeal(
        &mut self,
        body: &str,
        request_id: &str,
        subject: &Subject,
        grounds: &str,
        batch: &mut Batch,
    ) -> Result<AppealDecided> {
        let payload = hash(&(subject.key(), grounds));
        if let Some(id) = self.seen_request(batch, body, request_id, &payload)? {
            batch.must_sync = true;
            let appeal: Appeal = batch
                .read(&self.store, TreeId::Appeals, id.as_bytes())?
                .ok_or_else(|| Error::Store(format!("appeal {id} is missing")))?;
            return Ok(AppealDecided {
                appeal,
                entry: None,
            });
        }
        let entry = self.listing(batch, subject)?;
        if entry
            .as_ref()
            .is_none_or(|e| e.state != ListingState::Listed)
        {
            return Err(Error::FailedPrecondition(format!(
                "subject: {} is not listed: there is nothing to appeal",
                subject.masked()
            )));
        }
        let appeal = Appeal {
            appeal_id: format!("A{:012}", self.store.next_id()?),
            request_id: request_id.to_owned(),
            subject: subject.clone(),
            grounds: grounds.to_owned(),
            state: AppealState::Pending,
            decision_reason: String::new(),
            recorded_by: body.to_owned(),
            recorded_at: self.clock.now(),
            decided_by: String::new(),
            decided_at: None,
        };
        batch
            .writes
            .put(TreeId::Appeals, appeal.appeal_id.as_bytes(), &appeal);
        batch.audit_items.push(AuditItem::new(
            "appeal",
            appeal.appeal_id.clone(),
            format!("recorded for {}: {grounds}", subject.key()),
        ));
        self.remember_request(batch, body, request_id, payload, &appeal.appeal_id);
        batch.must_sync = true;
        tracing::info!(appeal_id = %appeal.appeal_id, subject = %subject.masked(), "appeal recorded");
        Ok(AppealDecided { appeal, entry })
    }

    pub(super) fn decide_appeal(
        &mut self,
        body: &str,
        appeal_id: &str,
        upheld: bool,
        reason: &str,
        batch: &mut Batch,
    ) -> Result<AppealDecided> {
        let mut appeal: Appeal = batch
            .read(&self.store, TreeId::Appeals, appeal_id.as_bytes())?
            .ok_or_else(|| Error::NotFound(format!("appeal_id: no appeal {appeal_id:?}")))?;
        if appeal.state != AppealState::Pending {
            return Err(Error::FailedPrecondition(format!(
                "appeal {appeal_id} was already decided ({:?}); an appeal is decided once",
                appeal.state
            )));
        }
        let now = self.clock.now();
        appeal.state = if upheld {
            AppealState::Upheld
        } else {
            AppealState::Dismissed
        };
        appeal.decision_reason = reason.to_owned();
        appeal.decided_by = body.to_owned();
        appeal.decided_at = Some(now);
        batch
            .writes
            .put(TreeId::Appeals, appeal_id.as_bytes(), &appeal);
        batch.audit_items.push(AuditItem::new(
            "appeal",
            appeal_id,
            format!("{:?}: {reason}", appeal.state),
        ));
        batch.must_sync = true;
        let mut entry = self.listing(batch, &appeal.subject)?;
        if upheld {
            if let Some(e) = &entry {
                if let Ok(next) = blacklist::remove(e, ListingState::AppealUpheld, reason, now) {
                    entry = Some(self.stage_change(batch, next, ChangeKind::Delisted));
                }
            }
        }
        tracing::info!(%appeal_id, upheld, "appeal decided");
        Ok(AppealDecided { appeal, entry })
    }

    pub(super) fn record_check(&mut self, record: &CheckRecord, batch: &mut Batch) -> Result<()> {
        let seq = self.store.next_id()?;
        batch
            .writes
            .put(TreeId::Checks, seq.to_be_bytes().to_vec(), record);
        for (subject, listed) in &record.answers {
            let answer = if *listed {
                "answered: listed"
            } else {
                "answered: not listed"
            };
            batch
                .audit_items
                .push(AuditItem::new("check", subject.clone(), answer));
        }
        Ok(())
    }
}
