//! `stophub.oversight.v1.OversightService`: read-only.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::{self, Role};
use crate::domain::instruction::State;
use crate::error::Error;
use crate::hub::Hub;
use crate::proto::stophub::oversight::v1::oversight_service_server::OversightService;
use crate::proto::stophub::oversight::v1::*;
use crate::reports;
use crate::service::convert;
use crate::store::TimerKind;

pub struct OversightApi {
    pub hub: Arc<Hub>,
}

/// At most this many records are examined per page, so that a narrow filter cannot make one
/// call scan the whole store; the page then ends early with a token to continue.
const SCAN_BUDGET: usize = 20_000;

#[tonic::async_trait]
impl OversightService for OversightApi {
    async fn list_instructions(
        &self,
        req: Request<ListInstructionsRequest>,
    ) -> Result<Response<ListInstructionsResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let req = req.into_inner();
        let page_size = match req.page_size {
            0 => 100,
            n @ 1..=1000 => n as usize,
            _ => return Err(Error::invalid("page_size", "must be 0-1000").into()),
        };
        let states = req
            .states
            .iter()
            .enumerate()
            .map(|(i, s)| convert::state_from_proto(&format!("states[{i}]"), *s))
            .collect::<Result<Vec<State>, _>>()?;
        let from = req
            .created_from
            .as_ref()
            .map(|t| convert::timestamp_from_proto("created_from", Some(t)))
            .transpose()?;
        let to = req
            .created_to
            .as_ref()
            .map(|t| convert::timestamp_from_proto("created_to", Some(t)))
            .transpose()?;
        if !req.page_token.is_empty() && !req.page_token.starts_with('I') {
            return Err(Error::invalid("page_token", "is not a token this hub issued").into());
        }
        let mut out = Vec::new();
        let mut last_key = String::new();
        let mut exhausted = true;
        for (scanned, entry) in self
            .hub
            .store()
            .instructions_after(&req.page_token)
            .enumerate()
        {
            if out.len() == page_size || scanned == SCAN_BUDGET {
                exhausted = false;
                break;
            }
            let (key, rec) = entry?;
            last_key = key;
            let keep = (states.is_empty() || states.contains(&rec.state))
                && (req.institution_code.is_empty() || rec.institution() == req.institution_code)
                && (req.case_reference.is_empty() || rec.case_reference == req.case_reference)
                && from.is_none_or(|f| rec.created_at >= f)
                && to.is_none_or(|t| rec.created_at < t);
            if keep {
                out.push(convert::instruction_to_proto(&rec));
            }
        }
        Ok(Response::new(ListInstructionsResponse {
            instructions: out,
            next_page_token: if exhausted { String::new() } else { last_key },
        }))
    }

    async fn get_instruction(
        &self,
        req: Request<GetInstructionRequest>,
    ) -> Result<Response<GetInstructionResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let id = &req.get_ref().instruction_id;
        let rec = self
            .hub
            .store()
            .instruction(id)?
            .ok_or_else(|| Error::NotFound(format!("instruction_id: no instruction {id:?}")))?;
        Ok(Response::new(GetInstructionResponse {
            instruction: Some(convert::instruction_to_proto(&rec)),
        }))
    }

    async fn list_expiring(
        &self,
        req: Request<ListExpiringRequest>,
    ) -> Result<Response<ListExpiringResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let req = req.into_inner();
        let hours = match req.within_hours {
            0 => 240,
            h @ 1..=8760 => i64::from(h),
            _ => return Err(Error::invalid("within_hours", "must be 0-8760").into()),
        };
        let limit = match req.limit {
            0 => 100,
            n @ 1..=1000 => n as usize,
            _ => return Err(Error::invalid("limit", "must be 0-1000").into()),
        };
        let actions = req
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| convert::action_filter(&format!("actions[{i}]"), *a))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.hub.now();
        let to = now.plus_millis(hours * 3_600_000);
        // Term-end timers index what is in force by expiry; each is re-checked against its
        // record, since a renewal leaves the old expiry's timer behind until it fires.
        let mut out = Vec::new();
        for timer in self
            .hub
            .store()
            .timers_between(now.millis(), to.millis(), usize::MAX)?
        {
            if out.len() == limit {
                break;
            }
            if timer.kind != Some(TimerKind::TermEnd) {
                continue;
            }
            let Some(rec) = self.hub.store().instruction(&timer.instruction_id)? else {
                continue;
            };
            let current = rec.state.holding()
                && rec.effective_until.map(|t| t.millis()) == Some(timer.due_ms);
            if current && (actions.is_empty() || actions.contains(&rec.action)) {
                out.push(convert::instruction_to_proto(&rec));
            }
        }
        Ok(Response::new(ListExpiringResponse { instructions: out }))
    }

    async fn get_case_graph(
        &self,
        req: Request<GetCaseGraphRequest>,
    ) -> Result<Response<GetCaseGraphResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let req = req.get_ref();
        let graph =
            crate::service::police::case_graph(&self.hub, &req.police_agency, &req.case_reference)?;
        Ok(Response::new(GetCaseGraphResponse { graph: Some(graph) }))
    }

    async fn get_listing(
        &self,
        req: Request<GetListingRequest>,
    ) -> Result<Response<GetListingResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let subject = convert::subject("subject", req.get_ref().subject.as_ref())?;
        let entry = self.hub.store().listing(&subject.key())?.ok_or_else(|| {
            Error::NotFound(format!(
                "subject: {} has no blacklist entry",
                subject.masked()
            ))
        })?;
        Ok(Response::new(GetListingResponse {
            entry: Some(convert::entry_to_proto(&entry)),
        }))
    }

    async fn record_appeal(
        &self,
        req: Request<RecordAppealRequest>,
    ) -> Result<Response<RecordAppealResponse>, Status> {
        let caller = auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let r = req.get_ref();
        let request_id = crate::domain::ids::request_id(&r.request_id)
            .map_err(|rule| Error::invalid("request_id", rule))?;
        let subject = convert::subject("subject", r.subject.as_ref())?;
        let grounds = convert::required_text("grounds", &r.grounds, 1024)?;
        let done = self
            .hub
            .record_appeal(&caller.org, request_id, subject, grounds)
            .await?;
        Ok(Response::new(RecordAppealResponse {
            appeal: Some(convert::appeal_to_proto(&done.appeal)),
        }))
    }

    async fn decide_appeal(
        &self,
        req: Request<DecideAppealRequest>,
    ) -> Result<Response<DecideAppealResponse>, Status> {
        let caller = auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let r = req.get_ref();
        let appeal_id = convert::instruction_id("appeal_id", &r.appeal_id)?;
        let reason = convert::required_text("reason", &r.reason, 256)?;
        let done = self
            .hub
            .decide_appeal(&caller.org, appeal_id, r.upheld, reason)
            .await?;
        Ok(Response::new(DecideAppealResponse {
            appeal: Some(convert::appeal_to_proto(&done.appeal)),
            entry: done.entry.as_ref().map(convert::entry_to_proto),
        }))
    }

    type StreamAuditStream = tokio_stream::wrappers::ReceiverStream<Result<AuditRecord, Status>>;

    async fn stream_audit(
        &self,
        req: Request<StreamAuditRequest>,
    ) -> Result<Response<Self::StreamAuditStream>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let hub = self.hub.clone();
        let mut after = req.get_ref().after_seq;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut watermark = hub.audit_watermark();
            hub.request_sync().await;
            let shutdown = hub.shutdown_token().clone();
            loop {
                let upto = *watermark.borrow_and_update();
                while after < upto {
                    let page = match crate::audit::records_after(hub.store(), after, 512) {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            return;
                        }
                    };
                    let Some(last) = page.last().map(|r| r.seq) else {
                        break;
                    };
                    for r in page.iter().filter(|r| r.seq <= upto) {
                        if tx.send(Ok(convert::audit_to_proto(r))).await.is_err() {
                            return;
                        }
                    }
                    after = last.min(upto);
                }
                tokio::select! {
                    changed = watermark.changed() => if changed.is_err() { return },
                    _ = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("the hub is shutting down: stream again from your last position"))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn verify_audit(
        &self,
        req: Request<VerifyAuditRequest>,
    ) -> Result<Response<VerifyAuditResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let hub = self.hub.clone();
        // A walk of the whole chain is long work: keep it off the request threads.
        let verdict = tokio::task::spawn_blocking(move || crate::audit::verify(hub.store()))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(match verdict {
            crate::audit::Verdict::Intact { count, head } => VerifyAuditResponse {
                intact: true,
                count,
                head_hash: head,
                ..Default::default()
            },
            crate::audit::Verdict::Broken {
                at_seq,
                problem,
                checked,
            } => VerifyAuditResponse {
                intact: false,
                count: checked,
                broken_at_seq: at_seq,
                problem,
                ..Default::default()
            },
        }))
    }

    async fn get_stats(
        &self,
        req: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let window = window(req.get_ref().window.as_ref())?;
        let institution = Some(req.get_ref().institution_code.clone()).filter(|c| !c.is_empty());
        let (hub, now) = (self.hub.clone(), self.hub.now());
        let stats =
            blocking(move || reports::stats(hub.store(), window, institution.as_deref(), now))
                .await?;
        Ok(Response::new(GetStatsResponse {
            institutions: stats.iter().map(convert::stats_to_proto).collect(),
        }))
    }

    async fn get_amounts(
        &self,
        req: Request<GetAmountsRequest>,
    ) -> Result<Response<GetAmountsResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let r = req.get_ref();
        let window = window(r.window.as_ref())?;
        let group = match AmountGrouping::try_from(r.group_by) {
            Ok(AmountGrouping::Case) => reports::Grouping::Case,
            Ok(AmountGrouping::Institution) => reports::Grouping::Institution,
            Ok(AmountGrouping::Day) => reports::Grouping::Day,
            Ok(AmountGrouping::Unspecified) | Err(_) => {
                return Err(
                    Error::invalid("group_by", "is required (CASE, INSTITUTION or DAY)").into(),
                );
            }
        };
        let page_size = match r.page_size {
            0 => 100,
            n @ 1..=1000 => n as usize,
            _ => return Err(Error::invalid("page_size", "must be 0-1000").into()),
        };
        let hub = self.hub.clone();
        let rows = blocking(move || reports::amounts(hub.store(), window, group)).await?;
        let start = rows
            .iter()
            .position(|row| row.key.as_str() > r.page_token.as_str())
            .unwrap_or(rows.len());
        let start = if r.page_token.is_empty() { 0 } else { start };
        let page: Vec<_> = rows.iter().skip(start).take(page_size).collect();
        let more = start + page.len() < rows.len();
        Ok(Response::new(GetAmountsResponse {
            next_page_token: if more {
                page.last().map(|row| row.key.clone()).unwrap_or_default()
            } else {
                String::new()
            },
            rows: page.into_iter().map(convert::amount_to_proto).collect(),
        }))
    }

    async fn get_case(
        &self,
        req: Request<GetCaseRequest>,
    ) -> Result<Response<GetCaseResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let (agency, case) = (
            req.get_ref().police_agency.clone(),
            req.get_ref().case_reference.clone(),
        );
        let graph = crate::service::police::case_graph(&self.hub, &agency, &case)?;
        let hub = self.hub.clone();
        let (notices, instructions, audit) =
            blocking(move || reports::case_view(hub.store(), &agency, &case)).await?;
        Ok(Response::new(GetCaseResponse {
            notice_ids: notices,
            instructions: instructions
                .iter()
                .map(convert::instruction_to_proto)
                .collect(),
            graph: Some(graph),
            audit: audit.iter().map(convert::audit_to_proto).collect(),
        }))
    }

    async fn get_blacklist_figures(
        &self,
        req: Request<GetBlacklistFiguresRequest>,
    ) -> Result<Response<GetBlacklistFiguresResponse>, Status> {
        auth::caller(&req, self.hub.registry(), Role::Oversight)?;
        let window = window(req.get_ref().window.as_ref())?;
        let (hub, now) = (self.hub.clone(), self.hub.now());
        let f = blocking(move || reports::blacklist_figures(hub.store(), window, now)).await?;
        Ok(Response::new(GetBlacklistFiguresResponse {
            in_force_by_basis: f
                .in_force_by_basis
                .iter()
                .map(|(basis, n)| BasisCount {
                    legal_basis: basis.clone(),
                    in_force: *n,
                })
                .collect(),
            listings: f.listings,
            extensions: f.extensions,
            delistings: f.delistings,
            lapses: f.lapses,
            appeals_recorded: f.appeals_recorded,
            appeals_upheld: f.appeals_upheld,
            appeals_dismissed: f.appeals_dismissed,
        }))
    }
}

fn window(w: Option<&Window>) -> Result<reports::Window, Error> {
    let Some(w) = w else {
        return Ok(reports::Window::default());
    };
    let from = w
        .from
        .as_ref()
        .map(|t| convert::timestamp_from_proto("window.from", Some(t)))
        .transpose()?;
    let to =
        w.to.as_ref()
            .map(|t| convert::timestamp_from_proto("window.to", Some(t)))
            .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(Error::invalid("window.to", "must be after window.from"));
        }
    }
    Ok(reports::Window { from, to })
}

/// Runs a report off the request threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::from)
}
