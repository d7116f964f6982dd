//! The simulated people's gRPC client: every call goes through the real `CommandService` over
//! HTTP/2, with a bearer token minted for the caller's role, and is timed into [`Stats`].
//!
//! Calls are spread over a few connections (one connection's single socket task is not what
//! the demo should measure). Tokens are minted once per caller, on the simulated clock, valid
//! for the whole run.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderflow_domain::{Role, Timestamp};
use orderflow_infra::auth::JwtAuth;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use orderflow_proto::v1::query_service_client::QueryServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::stats::Stats;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    Merchant(i64),
    Buyer(i64),
    Rider(i64),
    /// The operations desk (compensations, closing late orders).
    Ops,
    /// The payment provider's callback.
    Payments,
}

impl Caller {
    fn role_and_sub(self) -> (Role, String) {
        match self {
            Caller::Merchant(id) => (Role::Merchant, id.to_string()),
            Caller::Buyer(id) => (Role::Buyer, id.to_string()),
            Caller::Rider(id) => (Role::Rider, id.to_string()),
            Caller::Ops => (Role::Ops, "ops-demo".to_owned()),
            Caller::Payments => (Role::Service, "payments".to_owned()),
        }
    }
}

#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    channels: Vec<Channel>,
    next_channel: AtomicUsize,
    auth: JwtAuth,
    /// When tokens are minted (the run's start) and how long they live (the whole run).
    minted_at: Timestamp,
    token_ttl: Duration,
    /// A std Mutex: held to look up or insert one header, never across an await.
    tokens: Mutex<HashMap<Caller, MetadataValue<Ascii>>>,
    /// Distinguishes this run's request ids from any earlier run's on the same store.
    run: String,
    next_request: AtomicU64,
    in_flight: AtomicUsize,
    stats: Stats,
}

impl Api {
    pub fn new(
        channels: Vec<Channel>,
        auth: JwtAuth,
        minted_at: Timestamp,
        token_ttl: Duration,
        run: String,
    ) -> Self {
        assert!(!channels.is_empty(), "the api needs a connection");
        Api {
            inner: Arc::new(Inner {
                channels,
                next_channel: AtomicUsize::new(0),
                auth,
                minted_at,
                token_ttl,
                tokens: Mutex::new(HashMap::new()),
                run,
                next_request: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                stats: Stats::default(),
            }),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Calls sent and not yet answered (the driver's back-pressure).
    pub fn in_flight(&self) -> &AtomicUsize {
        &self.inner.in_flight
    }

    /// A fresh idempotency key.
    pub fn request_id(&self) -> String {
        let n = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.inner.run)
    }

    fn header(&self, caller: Caller) -> Result<MetadataValue<Ascii>, Status> {
        let mut tokens = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = tokens.get(&caller) {
            return Ok(h.clone());
        }
        let (role, sub) = caller.role_and_sub();
        let token = self
            .inner
            .auth
            .mint_at(role, &sub, self.inner.minted_at, self.inner.token_ttl)
            .map_err(|e| Status::internal(format!("minting a token: {e}")))?;
        let header: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("token is not a valid header"))?;
        tokens.insert(caller, header.clone());
        Ok(header)
    }

    fn channel(&self) -> Channel {
        let i = self.inner.next_channel.fetch_add(1, Ordering::Relaxed);
        self.inner.channels[i % self.inner.channels.len()].clone()
    }

    /// Sends one call, timed. `counted`: whether it holds the driver back while unanswered
    /// (not a long-poll, whose wait is the point).
    async fn call<T, R, F, Fut>(
        &self,
        rpc: &'static str,
        caller: Caller,
        message: T,
        counted: bool,
        send: F,
    ) -> Result<R, Status>
    where
        F: FnOnce(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.header(caller)?);
        if counted {
            self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        let began = Instant::now();
        let answer = send(self.channel(), request).await;
        let took = began.elapsed();
        if counted {
            self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.inner
            .stats
            .record(rpc, took, answer.as_ref().map(|_| ()).map_err(Status::code));
        answer.map(Response::into_inner)
    }
}

/// One method per RPC, each `(caller, request) -> reply`.
macro_rules! rpcs {
    ($client:ident, counted: $counted:expr, $($method:ident: $name:literal, $request:ident => $reply:ident;)*) => {
        impl Api {
            $(
                pub async fn $method(
                    &self,
                    caller: Caller,
                    request: pb::$request,
                ) -> Result<pb::$reply, Status> {
                    self.call($name, caller, request, $counted, |channel, r| async move {
                        $client::new(channel).$method(r).await
                    })
                    .await
                }
            )*
        }
    };
}

rpcs! {
    QueryServiceClient, counted: false,
    // A long-poll: it waits for the saga on purpose.
    is_created: "IsCreated", IsCreatedRequest => IsCreatedReply;
}

rpcs! {
    QueryServiceClient, counted: true,
    get_order: "GetOrder", GetOrderRequest => Order;
}

rpcs! {
    CommandServiceClient, counted: true,
    open_merchant: "OpenMerchant", OpenMerchantRequest => CommandReply;
    list_dish: "ListDish", ListDishRequest => CommandReply;
    restock: "Restock", RestockRequest => CommandReply;
    submit_order: "SubmitOrder", SubmitOrderRequest => SubmitOrderReply;
    cancel_order: "CancelOrder", CancelOrderRequest => CommandReply;
    confirm_payment: "ConfirmPayment", ConfirmPaymentRequest => CommandReply;
    go_online: "GoOnline", GoOnlineRequest => CommandReply;
    report_location: "ReportLocation", ReportLocationRequest => CommandReply;
    grab_order: "GrabOrder", GrabOrderRequest => CommandReply;
    pick_up: "PickUp", PickUpRequest => CommandReply;
    confirm_delivery: "ConfirmDelivery", ConfirmDeliveryRequest => CommandReply;
    compensate: "Compensate", CompensateRequest => CommandReply;
    close_order: "CloseOrder", CloseOrderRequest => CommandReply;
}

pub fn money(minor_units: i64) -> pb::Money {
    pb::Money {
        currency_code: "CNY".into(),
        minor_units,
    }
}
