//! The gRPC `orderflow.v1.QueryService`.
//!
//! Every RPC runs the same steps: authenticate the bearer token at the service clock's "now"
//! → parse the request into its validated struct (`INVALID_ARGUMENT` naming the field) →
//! authorize what can be judged from the request → with a `consistency_token`, wait
//! (bounded) until the read model has applied it → read → authorize what needs the row
//! (whose order it is) → answer.
//!
//! - [`orders`]: `GetOrder`, `IsCreated` (long-poll), `WatchOrder` (stream),
//!   `ListBuyerOrders`, `ListSellerOrders`, `SearchOrders`;
//! - [`audit`]: `GetOrderHistory`, `GetOrderAsOf` (over [`crate::history`]);
//! - [`stock`]: `GetStock`, `ListReservations`;
//! - [`catalog`]: `ListMerchantsNearby`, `GetMenu`;
//! - [`riders`]: `NearbyRiders`, `ListOffers`, `WatchOffers`.

mod audit;
mod catalog;
mod orders;
mod riders;
mod stock;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use orderflow_domain::Timestamp;
use orderflow_infra::auth::{Caller, JwtAuth};
use orderflow_infra::store::EventStore;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::query_service_server::QueryService;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::auth::authenticate;
use crate::error::QueryError;
use crate::read_models::{CatalogViews, OrderViews};
use crate::tokens::TokenCache;

/// Where "now" comes from (token expiry): the wall clock, or a test's manual clock.
pub type Now = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_now() -> Now {
    Arc::new(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(ms)
    })
}

#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Longest wait for a consistency token before UNAVAILABLE.
    pub consistency_bound: Duration,
    /// Verified bearer tokens remembered until they expire ([`TokenCache`]).
    pub token_cache: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            consistency_bound: Duration::from_secs(5),
            token_cache: crate::tokens::DEFAULT_CAPACITY,
        }
    }
}

/// The `QueryService` implementation. Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct QueryHandler {
    pub(crate) auth: JwtAuth,
    /// Tokens verified already, until they expire: shared by the handler's clones.
    pub(crate) tokens: Arc<TokenCache>,
    pub(crate) now: Now,
    pub(crate) orders: OrderViews,
    /// The stock and catalog views; `None`: their RPCs answer UNIMPLEMENTED.
    pub(crate) catalog: Option<CatalogViews>,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) config: QueryConfig,
    /// Cancelled when the server begins to shut down: long-polls answer and streams end, so
    /// the server's drain does not wait on them.
    pub(crate) shutdown: CancellationToken,
}

impl QueryHandler {
    pub fn new(
        auth: JwtAuth,
        now: Now,
        orders: OrderViews,
        store: Arc<dyn EventStore>,
        config: QueryConfig,
        shutdown: CancellationToken,
    ) -> Self {
        QueryHandler {
            auth,
            tokens: Arc::new(TokenCache::new(config.token_cache)),
            now,
            orders,
            catalog: None,
            store,
            config,
            shutdown,
        }
    }

    /// Serves the stock and catalog RPCs from `catalog`.
    pub fn with_catalog(mut self, catalog: CatalogViews) -> Self {
        self.catalog = Some(catalog);
        self
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, QueryError> {
        authenticate(&self.auth, &self.tokens, request.metadata(), (self.now)())
    }
}

/// A server stream of this service.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn answer<T>(result: Result<T, QueryError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl QueryService for QueryHandler {
    #[instrument(skip_all, fields(order_no = %request.get_ref().order_no))]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        answer(self.get_order(request).await)
    }

    #[instrument(skip_all, fields(order_no = %request.get_ref().order_no, wait_ms = request.get_ref().wait_ms))]
    async fn is_created(
        &self,
        request: Request<pb::IsCreatedRequest>,
    ) -> Result<Response<pb::IsCreatedReply>, Status> {
        answer(self.is_created(request).await)
    }

    type WatchOrderStream = ResponseStream<pb::OrderUpdate>;

    #[instrument(skip_all, fields(order_no = %request.get_ref().order_no))]
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        answer(self.watch_order(request).await)
    }

    #[instrument(skip_all, fields(buyer_id = request.get_ref().buyer_id))]
    async fn list_buyer_orders(
        &self,
        request: Request<pb::ListBuyerOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersReply>, Status> {
        answer(self.list_buyer_orders(request).await)
    }

    #[instrument(skip_all, fields(merchant_id = request.get_ref().merchant_id))]
    async fn list_seller_orders(
        &self,
        request: Request<pb::ListSellerOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersReply>, Status> {
        answer(self.list_seller_orders(request).await)
    }

    #[instrument(skip_all)]
    async fn search_orders(
        &self,
        request: Request<pb::SearchOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersReply>, Status> {
        answer(self.search_orders(request).await)
    }

    #[instrument(skip_all, fields(order_no = %request.get_ref().order_no))]
    async fn get_order_history(
        &self,
        request: Request<pb::GetOrderHistoryRequest>,
    ) -> Result<Response<pb::OrderHistory>, Status> {
        answer(self.get_order_history(request).await)
    }

    #[instrument(skip_all, fields(order_no = %request.get_ref().order_no))]
    async fn get_order_as_of(
        &self,
        request: Request<pb::GetOrderAsOfRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        answer(self.get_order_as_of(request).await)
    }

    #[instrument(skip_all, fields(sku_id = %request.get_ref().sku_id))]
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        answer(self.get_stock(request).await)
    }

    #[instrument(skip_all, fields(sku_id = %request.get_ref().sku_id, state = request.get_ref().state))]
    async fn list_reservations(
        &self,
        request: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsReply>, Status> {
        answer(self.list_reservations(request).await)
    }

    #[instrument(skip_all, fields(radius_m = request.get_ref().radius_m, limit = request.get_ref().limit))]
    async fn nearby_riders(
        &self,
        request: Request<pb::NearbyRidersRequest>,
    ) -> Result<Response<pb::NearbyRidersReply>, Status> {
        answer(self.nearby_riders(request).await)
    }

    #[instrument(skip_all, fields(rider_id = request.get_ref().rider_id))]
    async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersReply>, Status> {
        answer(self.list_offers(request).await)
    }

    type WatchOffersStream = ResponseStream<pb::Offer>;

    #[instrument(skip_all, fields(rider_id = request.get_ref().rider_id))]
    async fn watch_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<Self::WatchOffersStream>, Status> {
        answer(self.watch_offers(request).await)
    }

    #[instrument(skip_all, fields(radius_m = request.get_ref().radius_m))]
    async fn list_merchants_nearby(
        &self,
        request: Request<pb::ListMerchantsNearbyRequest>,
    ) -> Result<Response<pb::ListMerchantsNearbyReply>, Status> {
        answer(self.list_merchants_nearby(request).await)
    }

    #[instrument(skip_all, fields(merchant_id = request.get_ref().merchant_id))]
    async fn get_menu(
        &self,
        request: Request<pb::GetMenuRequest>,
    ) -> Result<Response<pb::Menu>, Status> {
        answer(self.get_menu(request).await)
    }
}
