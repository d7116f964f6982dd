//! The gRPC `orderflow.v1.CommandService`: fifteen RPCs, one module per role group.
//!
//! - [`merchant`]: `OpenMerchant`, `ListDish`, `DelistDish`, `Restock`;
//! - [`buyer`]: `SubmitOrder` (with [`submit`], its request claim), `CancelOrder`;
//! - [`rider`]: `GoOnline`, `ReportLocation`, `GoOffline`, `GrabOrder`, `PickUp`,
//!   `ConfirmDelivery`;
//! - [`ops`]: the payment provider's `ConfirmPayment`, and ops' `Compensate`, `CloseOrder`.
//!
//! Every RPC runs the same steps, in this order: authenticate the bearer token at the
//! service clock's "now" → parse the request into its validated command
//! (`INVALID_ARGUMENT` naming the field) → authorize the caller for it → build the domain
//! command(s) with `at = now` and the [`CommandMeta`] (scoped command id from
//! [`idempotency`], correlation id from `x-correlation-id` or fresh, the caller as actor)
//! → execute → answer with the consistency token of what was appended (for a repeat, of
//! what the first attempt appended; for a no-op, of the stream's head). Steps one to three
//! ([`CommandHandler::begin`]) touch no stream, so a refused caller or request leaves the
//! store unchanged.

mod buyer;
pub mod idempotency;
mod merchant;
pub mod merchants;
mod ops;
pub mod order_numbers;
mod rider;
pub mod submit;

use std::sync::Arc;

use orderflow_domain::{StreamId, Timestamp};
use orderflow_infra::auth::{Caller, JwtAuth};
use orderflow_infra::store::{CorrelationId, EventStore};
use orderflow_proto::convert::{
    CancelOrder, CloseOrder, Compensate, ConfirmDelivery, ConfirmPayment, DelistDish, FieldError,
    GoOffline, GoOnline, GrabOrder, ListDish, OpenMerchant, PickUp, ReportLocation, RequestId,
    Restock, SubmitOrder,
};
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_server::CommandService;
use tonic::{Request, Response, Status};

use crate::auth::{authenticate, Authorize};
use crate::clock::Clock;
use crate::config::CommandConfig;
use crate::error::CommandError;
use crate::execute::{Aggregate, CommandMeta, Executed, Executor};
use crate::stock::StockWriters;

pub use order_numbers::OrderNumbers;

/// The request metadata key of the correlation id a caller may send.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The `CommandService` implementation. Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct CommandHandler {
    pub(crate) executor: Executor,
    pub(crate) stock: StockWriters,
    pub(crate) auth: JwtAuth,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: CommandConfig,
    pub(crate) order_numbers: Arc<OrderNumbers>,
    /// Merchants recently seen open: the submit check without a read per submit.
    pub(crate) open_merchants: Arc<merchants::OpenMerchants>,
}

/// Who sent the RPC and the metadata of what it appends.
pub(crate) struct Ctx {
    pub caller: Caller,
    pub meta: CommandMeta,
}

/// The client's idempotency key of a parsed request.
pub(crate) trait HasRequestId {
    fn request_id(&self) -> &RequestId;
}

macro_rules! has_request_id {
    ($($t:ty),* $(,)?) => {$(
        impl HasRequestId for $t {
            fn request_id(&self) -> &RequestId {
                &self.request_id
            }
        }
    )*};
}

has_request_id!(
    OpenMerchant,
    ListDish,
    DelistDish,
    Restock,
    SubmitOrder,
    CancelOrder,
    ConfirmPayment,
    GoOnline,
    ReportLocation,
    GoOffline,
    GrabOrder,
    PickUp,
    ConfirmDelivery,
    Compensate,
    CloseOrder,
);

impl CommandHandler {
    pub fn new(
        executor: Executor,
        stock: StockWriters,
        auth: JwtAuth,
        clock: Arc<dyn Clock>,
        config: CommandConfig,
        order_numbers: Arc<OrderNumbers>,
    ) -> Self {
        CommandHandler {
            executor,
            stock,
            auth,
            clock,
            config,
            order_numbers,
            open_merchants: Arc::new(merchants::OpenMerchants::default()),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn EventStore> {
        self.executor.store()
    }

    /// Authenticate → parse → authorize, and the metadata of the command. Records the
    /// request id, correlation id and actor on the RPC's span.
    pub(crate) fn begin<P, R>(&self, request: &Request<R>) -> Result<(Ctx, P), CommandError>
    where
        P: for<'a> TryFrom<&'a R, Error = FieldError> + Authorize + HasRequestId,
    {
        let now = self.clock.now();
        let caller = authenticate(&self.auth, request, now)?;
        let parsed = P::try_from(request.get_ref())?;
        parsed.authorize(&caller)?;
        let correlation_id = correlation_id(request.metadata());
        let span = tracing::Span::current();
        span.record("request_id", parsed.request_id().as_str());
        span.record("correlation_id", correlation_id.as_str());
        span.record(
            "actor",
            format!("{}:{}", caller.role().as_str(), caller.subject()).as_str(),
        );
        let meta = CommandMeta {
            command_id: idempotency::command_id(&caller, P::RPC, parsed.request_id())?,
            correlation_id,
            causation_id: None,
            actor: caller.actor(),
            at: now,
        };
        Ok((Ctx { caller, meta }, parsed))
    }
}

impl CommandHandler {
    /// The common shape of an RPC: [`CommandHandler::begin`], then one command on one stream,
    /// answered with what it appended. `command` builds both from the parsed request and the
    /// command's time.
    pub(crate) async fn one_command<P, R, A>(
        &self,
        request: &Request<R>,
        command: impl FnOnce(&P, Timestamp) -> (StreamId, A::Command),
    ) -> Result<Response<pb::CommandReply>, Status>
    where
        P: for<'a> TryFrom<&'a R, Error = FieldError> + Authorize + HasRequestId,
        A: Aggregate,
    {
        answer(
            async {
                let (ctx, parsed) = self.begin::<P, _>(request)?;
                let (stream, command) = command(&parsed, ctx.meta.at);
                let done = self
                    .executor
                    .execute::<A>(&stream, &command, &ctx.meta)
                    .await?;
                Ok(reply(&done))
            }
            .await,
        )
    }
}

/// The caller's `x-correlation-id` when it is a usable id, else a fresh one: a bad header
/// is not worth refusing a command for, and every event must carry one.
fn correlation_id(metadata: &tonic::metadata::MetadataMap) -> CorrelationId {
    metadata
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| CorrelationId::parse(v).ok())
        .unwrap_or_else(CorrelationId::random)
}

/// The wire answer of a command that appended (or had appended) `done`.
pub(crate) fn reply<E>(done: &Executed<E>) -> pb::CommandReply {
    pb::CommandReply {
        consistency_token: done.token_string(),
    }
}

/// An RPC's outcome on the wire; refusals are logged on the RPC's span.
pub(crate) fn answer<T>(outcome: Result<T, CommandError>) -> Result<Response<T>, Status> {
    match outcome {
        Ok(reply) => Ok(Response::new(reply)),
        Err(e) => {
            let status = Status::from(e);
            match status.code() {
                tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::Unknown => {
                    tracing::error!(code = ?status.code(), message = status.message(), "command failed")
                }
                code => tracing::info!(?code, message = status.message(), "command refused"),
            }
            Err(status)
        }
    }
}

#[tonic::async_trait]
impl CommandService for CommandHandler {
    async fn open_merchant(
        &self,
        request: Request<pb::OpenMerchantRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        merchant::open_merchant(self, request).await
    }

    async fn list_dish(
        &self,
        request: Request<pb::ListDishRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        merchant::list_dish(self, request).await
    }

    async fn delist_dish(
        &self,
        request: Request<pb::DelistDishRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        merchant::delist_dish(self, request).await
    }

    async fn restock(
        &self,
        request: Request<pb::RestockRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        merchant::restock(self, request).await
    }

    async fn submit_order(
        &self,
        request: Request<pb::SubmitOrderRequest>,
    ) -> Result<Response<pb::SubmitOrderReply>, Status> {
        buyer::submit_order(self, request).await
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        buyer::cancel_order(self, request).await
    }

    async fn confirm_payment(
        &self,
        request: Request<pb::ConfirmPaymentRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        ops::confirm_payment(self, request).await
    }

    async fn go_online(
        &self,
        request: Request<pb::GoOnlineRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        rider::go_online(self, request).await
    }

    async fn report_location(
        &self,
        request: Request<pb::ReportLocationRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        rider::report_location(self, request).await
    }

    async fn go_offline(
        &self,
        request: Request<pb::GoOfflineRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        rider::go_offline(self, request).await
    }

    async fn grab_order(
        &self,
        request: Request<pb::GrabOrderRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        rider::grab_order(self, request).await
    }

    async fn pick_up(
        &self,
        request: Request<pb::PickUpRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        rider::pick_up(self, request).await
    }

    async fn confirm_delivery(
        &self,
        request: Request<pb::ConfirmDeliveryRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        rider::confirm_delivery(self, request).await
    }

    async fn compensate(
        &self,
        request: Request<pb::CompensateRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        ops::compensate(self, request).await
    }

    async fn close_order(
        &self,
        request: Request<pb::CloseOrderRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        ops::close_order(self, request).await
    }
}
