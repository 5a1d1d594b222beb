//! `stophub.bank.v1.BankService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::{self, Role};
use crate::dispatch::{self, DeliveryStream};
use crate::hub::Hub;
use crate::proto::stophub::bank::v1::bank_service_server::BankService;
use crate::proto::stophub::bank::v1::*;
use crate::service::convert;

pub struct BankApi {
    pub hub: Arc<Hub>,
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
            return Err(crate::error::Error::invalid("instruction_id", "is required").into());
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
}
