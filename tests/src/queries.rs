//! The query service as one caller, like [`crate::Client`] for commands: every request
//! carries a token for its role and subject, minted at the test clock's current time.

use futures::StreamExt;
use orderflow_command_service::{Clock, ManualClock};
use orderflow_domain::Role;
use orderflow_infra::auth::JwtAuth;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::query_service_client::QueryServiceClient;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use crate::{TestApp, TOKEN_TTL};

#[derive(Clone)]
pub struct QueryClient {
    pub client: QueryServiceClient<Channel>,
    auth: JwtAuth,
    clock: ManualClock,
    pub role: Role,
    pub sub: String,
    /// Send no token at all (to see UNAUTHENTICATED).
    anonymous: bool,
}

macro_rules! query_rpcs {
    ($($rpc:ident($request:ident) -> $reply:ident;)*) => {
        impl QueryClient {
            $(
                pub async fn $rpc(&self, request: pb::$request) -> Result<pb::$reply, Status> {
                    let mut client = self.client.clone();
                    client.$rpc(self.request(request)).await.map(tonic::Response::into_inner)
                }
            )*
        }
    };
}

query_rpcs! {
    get_order(GetOrderRequest) -> Order;
    is_created(IsCreatedRequest) -> IsCreatedReply;
    list_buyer_orders(ListBuyerOrdersRequest) -> ListOrdersReply;
    list_seller_orders(ListSellerOrdersRequest) -> ListOrdersReply;
    search_orders(SearchOrdersRequest) -> ListOrdersReply;
    get_order_history(GetOrderHistoryRequest) -> OrderHistory;
    get_order_as_of(GetOrderAsOfRequest) -> Order;
    get_stock(GetStockRequest) -> StockLevel;
}

impl QueryClient {
    /// `message` with `authorization: Bearer <token>`.
    pub fn request<T>(&self, message: T) -> Request<T> {
        if self.anonymous {
            return Request::new(message);
        }
        let token = self
            .auth
            .mint_at(self.role, &self.sub, self.clock.now(), TOKEN_TTL)
            .expect("a valid subject");
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
        request
    }

    /// The same client sending no token.
    pub fn without_token(mut self) -> Self {
        self.anonymous = true;
        self
    }

    /// `GetOrder` without a consistency token.
    pub async fn order(&self, order_no: &str) -> Result<pb::Order, Status> {
        self.get_order(pb::GetOrderRequest {
            order_no: order_no.into(),
            consistency_token: String::new(),
        })
        .await
    }

    /// The stream of `WatchOrder`.
    pub async fn watch_order(&self, order_no: &str) -> Result<Streaming<pb::OrderUpdate>, Status> {
        let mut client = self.client.clone();
        client
            .watch_order(self.request(pb::WatchOrderRequest {
                order_no: order_no.into(),
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The next update of a watch, or `None` when the stream ended.
    pub async fn next_update(
        updates: &mut Streaming<pb::OrderUpdate>,
    ) -> Result<Option<pb::OrderUpdate>, Status> {
        updates.next().await.transpose()
    }
}

impl TestApp {
    pub fn queries_as(&self, role: Role, sub: impl Into<String>) -> QueryClient {
        QueryClient {
            client: self.queries.clone(),
            auth: self.auth.clone(),
            clock: self.clock.clone(),
            role,
            sub: sub.into(),
            anonymous: false,
        }
    }

    pub fn buyer_queries(&self, id: i64) -> QueryClient {
        self.queries_as(Role::Buyer, id.to_string())
    }

    pub fn merchant_queries(&self, id: i64) -> QueryClient {
        self.queries_as(Role::Merchant, id.to_string())
    }

    pub fn rider_queries(&self, id: i64) -> QueryClient {
        self.queries_as(Role::Rider, id.to_string())
    }

    pub fn ops_queries(&self) -> QueryClient {
        self.queries_as(Role::Ops, "ops-alice")
    }
}
