//! `stophub.police.v1.PoliceService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::{self, Caller, Role};
use crate::domain::notice::NoticeRecord;
use crate::error::Error;
use crate::hub::Hub;
use crate::participants::PoliceLevel;
use crate::proto::stophub::police::v1::police_service_server::PoliceService;
use crate::proto::stophub::police::v1::*;
use crate::service::convert;
use crate::watch::{self, WatchStream};

pub struct PoliceApi {
    pub hub: Arc<Hub>,
}

impl PoliceApi {
    fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Error> {
        auth::caller(req, self.hub.registry(), Role::Police)
    }

    /// The notice, if it is the caller's own.
    fn own_notice(&self, caller: &Caller, notice_id: &str) -> Result<NoticeRecord, Error> {
        let notice = self
            .hub
            .store()
            .notice(notice_id)?
            .ok_or_else(|| Error::NotFound(format!("notice_id: no notice {notice_id:?}")))?;
        if notice.police_agency != caller.org {
            return Err(Error::PermissionDenied(format!(
                "notice {notice_id} belongs to another agency; {} sees only its own notices",
                caller.org
            )));
        }
        Ok(notice)
    }
}

#[tonic::async_trait]
impl PoliceService for PoliceApi {
    async fn submit_notice(
        &self,
        req: Request<SubmitNoticeRequest>,
    ) -> Result<Response<SubmitNoticeResponse>, Status> {
        let caller = self.caller(&req)?;
        let notice = convert::new_notice(
            req.get_ref(),
            self.hub.registry(),
            self.hub.config(),
            self.hub.now(),
        )?;
        let done = self.hub.submit(&caller.org, notice).await?;
        Ok(Response::new(SubmitNoticeResponse {
            notice: Some(convert::notice_to_proto(&done.notice, &done.instructions)),
            replayed: done.replayed,
        }))
    }

    async fn get_notice(
        &self,
        req: Request<GetNoticeRequest>,
    ) -> Result<Response<GetNoticeResponse>, Status> {
        let caller = self.caller(&req)?;
        let notice = self.own_notice(&caller, &req.get_ref().notice_id)?;
        let instructions = self.hub.notice_instructions(&notice)?;
        Ok(Response::new(GetNoticeResponse {
            notice: Some(convert::notice_to_proto(&notice, &instructions)),
        }))
    }

    type WatchNoticeStream = WatchStream;

    async fn watch_notice(
        &self,
        req: Request<WatchNoticeRequest>,
    ) -> Result<Response<Self::WatchNoticeStream>, Status> {
        let caller = self.caller(&req)?;
        let notice = self.own_notice(&caller, &req.get_ref().notice_id)?;
        let until_answered = req.get_ref().until_answered;
        Ok(Response::new(watch::watch(
            self.hub.clone(),
            notice,
            until_answered,
        )))
    }

    async fn renew_freeze(
        &self,
        req: Request<RenewFreezeRequest>,
    ) -> Result<Response<RenewFreezeResponse>, Status> {
        let caller = self.caller(&req)?;
        let done = self
            .hub
            .follow_up(&caller.org, convert::renewal(req.get_ref())?)
            .await?;
        Ok(Response::new(RenewFreezeResponse {
            notice: Some(convert::notice_to_proto(&done.notice, &done.instructions)),
            replayed: done.replayed,
        }))
    }

    async fn release(
        &self,
        req: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        let caller = self.caller(&req)?;
        let done = self
            .hub
            .follow_up(&caller.org, convert::release(req.get_ref())?)
            .await?;
        Ok(Response::new(ReleaseResponse {
            notice: Some(convert::notice_to_proto(&done.notice, &done.instructions)),
            replayed: done.replayed,
        }))
    }

    async fn get_case_graph(
        &self,
        req: Request<GetCaseGraphRequest>,
    ) -> Result<Response<GetCaseGraphResponse>, Status> {
        let caller = self.caller(&req)?;
        let graph = case_graph(&self.hub, &caller.org, &req.get_ref().case_reference)?;
        Ok(Response::new(GetCaseGraphResponse { graph: Some(graph) }))
    }

    async fn list_subject(
        &self,
        req: Request<ListSubjectRequest>,
    ) -> Result<Response<ListSubjectResponse>, Status> {
        let caller = self.caller(&req)?;
        let level = self.hub.registry().police(&caller.org).map(|p| p.level);
        if level != Some(PoliceLevel::City) {
            return Err(Error::PermissionDenied(format!(
                "listing rule: only police agencies at city level or above may list subjects; {} is not registered at that level",
                caller.org
            ))
            .into());
        }
        let listing = convert::listing(req.get_ref())?;
        let done = self.hub.list_subject(&caller.org, listing).await?;
        Ok(Response::new(ListSubjectResponse {
            entry: Some(convert::entry_to_proto(&done.entry)),
            extended: done.extended,
            replayed: done.replayed,
        }))
    }

    async fn delist_subject(
        &self,
        req: Request<DelistSubjectRequest>,
    ) -> Result<Response<DelistSubjectResponse>, Status> {
        let caller = self.caller(&req)?;
        let subject = convert::subject("subject", req.get_ref().subject.as_ref())?;
        let reason = convert::required_text("reason", &req.get_ref().reason, 256)?;
        let done = self
            .hub
            .delist_subject(&caller.org, subject, reason)
            .await?;
        Ok(Response::new(DelistSubjectResponse {
            entry: Some(convert::entry_to_proto(&done.entry)),
        }))
    }
}

/// The fund-flow graph of one agency's case; NOT_FOUND when it has no instructions.
pub fn case_graph(
    hub: &Hub,
    agency: &str,
    case: &str,
) -> Result<crate::proto::stophub::common::v1::CaseGraph, Error> {
    if case.is_empty() {
        return Err(Error::invalid("case_reference", "is required"));
    }
    let records = hub
        .store()
        .case_instructions(agency, case)?
        .into_iter()
        .map(|(_, _, id)| {
            hub.store()
                .instruction(&id)?
                .ok_or_else(|| Error::Store(format!("instruction {id} is missing")))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if records.is_empty() {
        return Err(Error::NotFound(format!(
            "case_reference: agency {agency} has no case {case:?}"
        )));
    }
    let graph = crate::domain::graph::build(&records);
    Ok(convert::graph_to_proto(agency, case, &graph))
}
