//! `stophub.bank.v1.BankService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::{self, Role};
use crate::blacklist_sync::{self, SyncStream};
use crate::dispatch::{self, DeliveryStream};
use crate::domain::blacklist::ListingState;
use crate::error::Error;
use crate::hub::Hub;
use crate::proto::stophub::bank::v1::bank_service_server::BankService;
use crate::proto::stophub::bank::v1::*;
use crate::ratelimit::RateLimiter;
use crate::service::convert;
use crate::store::CheckRecord;

pub struct BankApi {
    pub hub: Arc<Hub>,
    /// Blacklist checks per institution.
    pub checks: RateLimiter,
}

#[tonic::async_trait]
impl BankService for BankApi {
    type SubscribeStream = DeliveryStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = auth::caller(&req, self.hub.registry(), Role::Bank)?;
        let stream =
            dispatch::subscribe(self.hub.clone(), caller.org, req.get_ref().after_sequence)?;
        Ok(Response::new(stream))
    }

    async fn acknowledge(
        &self,
        req: Request<AcknowledgeRequest>,
    ) -> Result<Response<AcknowledgeResponse>, Status> {
        let caller = auth::caller(&req, self.hub.registry(), Role::Bank)?;
        let req = req.into_inner();
        if req.instruction_id.is_empty() {
            return Err(Error::invalid("instruction_id", "is required").into());
        }
        let outcome = convert::outcome(req.outcome.as_ref(), self.hub.config(), self.hub.now())?;
        let acked = self
            .hub
            .acknowledge(&caller.org, &req.instruction_id, outcome)
            .await?;
        Ok(Response::new(AcknowledgeResponse {
            instruction: Some(convert::instruction_to_proto(&acked.instruction)),
            duplicate: acked.duplicate,
        }))
    }

    async fn check_subject(
        &self,
        req: Request<CheckSubjectRequest>,
    ) -> Result<Response<CheckSubjectResponse>, Status> {
        let caller = auth::caller(&req, self.hub.registry(), Role::Bank)?;
        let subjects = convert::check_subjects(&req.get_ref().subjects)?;
        if let Err(wait_ms) = self.checks.take(&caller.org, subjects.len() as u32) {
            return Err(Error::ResourceExhausted(format!(
                "check rate limit: at most {} subject checks a second for {}; retry in {wait_ms} ms",
                self.checks.per_second(),
                caller.org
            ))
            .into());
        }
        // Every check is recorded: with no room to record it, it is not answered either.
        self.hub
            .store()
            .check_room(self.hub.config().min_free_bytes)?;
        let now = self.hub.now();
        let mut results = Vec::with_capacity(subjects.len());
        let mut answers = Vec::with_capacity(subjects.len());
        for subject in &subjects {
            let entry = self
                .hub
                .store()
                .listing(&subject.key())?
                .filter(|e| e.state == ListingState::Listed && e.expires_at > now);
            answers.push((subject.key(), entry.is_some()));
            results.push(CheckResult {
                subject: Some(convert::subject_to_proto(subject)),
                listed: entry.is_some(),
                effects: entry.as_ref().map(|e| convert::effects_to_proto(e.effects)),
                listed_until: entry
                    .as_ref()
                    .map(|e| convert::timestamp_to_proto(e.expires_at)),
            });
        }
        self.hub.record_check(CheckRecord {
            institution: caller.org,
            at: now,
            answers,
        });
        Ok(Response::new(CheckSubjectResponse { results }))
    }

    type SyncBlacklistStream = SyncStream;

    async fn sync_blacklist(
        &self,
        req: Request<SyncBlacklistRequest>,
    ) -> Result<Response<Self::SyncBlacklistStream>, Status> {
        let caller = auth::caller(&req, self.hub.registry(), Role::Bank)?;
        Ok(Response::new(blacklist_sync::sync(
            self.hub.clone(),
            caller.org,
            req.get_ref().from_version,
        )))
    }
}
