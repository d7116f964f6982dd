//! The order RPCs, over the `order_detail`, `buyer_order` and `seller_order` views.
//!
//! `IsCreated` and `WatchOrder` wait on the `order_detail` projector's applied position of
//! the order's shard (the order number names it): each time that shard moves they read the
//! one row again. No timer polls the database; an idle order costs a parked task.

use futures::stream::{self, StreamExt};
use orderflow_domain::order::OrderStatus;
use orderflow_domain::OrderNo;
use orderflow_projections::orders::{Cursor, OrderView, Owner, Page};
use orderflow_proto::convert::to_proto::failure_reason;
use orderflow_proto::convert::{
    GetOrder, IsCreated, ListBuyerOrders, ListSellerOrders, SearchOrders, WatchOrder,
};
use orderflow_proto::v1 as pb;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Request, Status};

use super::{QueryHandler, ResponseStream};
use crate::auth::{may_list_buyer, may_list_seller, may_read_order, may_search};
use crate::convert;
use crate::error::QueryError;

fn not_found(order_no: &OrderNo) -> QueryError {
    QueryError::NotFound(format!("order {order_no} does not exist"))
}

fn list_reply(page: Page) -> pb::ListOrdersReply {
    pb::ListOrdersReply {
        orders: page.orders.iter().map(convert::order).collect(),
        next_page_token: page.next.map(|c| c.token()).unwrap_or_default(),
    }
}

fn creation(view: &OrderView) -> pb::IsCreatedReply {
    let state = match view.status {
        OrderStatus::Creating => pb::CreationState::Creating,
        OrderStatus::Failed => pb::CreationState::Failed,
        _ => pb::CreationState::Created,
    };
    pb::IsCreatedReply {
        order_no: view.order_no.to_string(),
        state: state.into(),
        failure_reason: failure_reason(view.failure),
    }
}

impl QueryHandler {
    pub(crate) async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<pb::Order, QueryError> {
        let caller = self.caller(&request)?;
        let q = GetOrder::try_from(request.get_ref())?;
        let detail = self
            .orders
            .detail
            .caught_up(&q.consistency_token, self.config.consistency_bound)
            .await?;
        let view = detail
            .get(&q.order_no)
            .await?
            .ok_or_else(|| not_found(&q.order_no))?;
        may_read_order(&caller, convert::parties(&view))?;
        Ok(convert::order(&view))
    }

    /// Answers as soon as the order is past CREATING, or at the end of the wait with what
    /// the view holds then (CREATING, or NOT_FOUND if it has not even been projected).
    pub(crate) async fn is_created(
        &self,
        request: Request<pb::IsCreatedRequest>,
    ) -> Result<pb::IsCreatedReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = IsCreated::try_from(request.get_ref())?;
        let deadline = Instant::now() + q.wait;
        let mut moved = self.orders.detail.applied.watch(q.order_no.shard());
        loop {
            // Marked seen before the read: a batch applied after it wakes the wait below.
            moved.borrow_and_update();
            let view = self.orders.detail.reader.get(&q.order_no).await?;
            if let Some(view) = &view {
                may_read_order(&caller, convert::parties(view))?;
                if view.status != OrderStatus::Creating {
                    return Ok(creation(view));
                }
            }
            let timed_out = tokio::select! {
                changed = moved.changed() => changed.is_err(),
                _ = tokio::time::sleep_until(deadline) => true,
                _ = self.shutdown.cancelled() => true,
            };
            if timed_out {
                return view
                    .as_ref()
                    .map(creation)
                    .ok_or_else(|| not_found(&q.order_no));
            }
        }
    }

    /// The current status first, then each status change as the view records it; the
    /// stream ends after a terminal status, or when the server shuts down.
    pub(crate) async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<ResponseStream<pb::OrderUpdate>, QueryError> {
        let caller = self.caller(&request)?;
        let q = WatchOrder::try_from(request.get_ref())?;
        let mut moved = self.orders.detail.applied.watch(q.order_no.shard());
        moved.borrow_and_update();
        let view = self
            .orders
            .detail
            .reader
            .get(&q.order_no)
            .await?
            .ok_or_else(|| not_found(&q.order_no))?;
        may_read_order(&caller, convert::parties(&view))?;
        let current = view.timeline.last().map(|c| convert::update(&view, c));
        let watcher = Watcher {
            handler: self.clone(),
            order_no: q.order_no,
            moved,
            sent: view.timeline.len(),
            done: view.status.is_terminal(),
        };
        let first = stream::iter(current.into_iter().map(Ok));
        let rest = stream::unfold(watcher, Watcher::next).flat_map(stream::iter);
        Ok(Box::pin(first.chain(rest)))
    }

    pub(crate) async fn list_buyer_orders(
        &self,
        request: Request<pb::ListBuyerOrdersRequest>,
    ) -> Result<pb::ListOrdersReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = ListBuyerOrders::try_from(request.get_ref())?;
        may_list_buyer(&caller, q.buyer)?;
        let after = Cursor::parse_token(&q.page_token)?;
        let buyers = self
            .orders
            .buyers
            .caught_up(&q.consistency_token, self.config.consistency_bound)
            .await?;
        let page = buyers
            .list(
                Owner::Buyer(q.buyer),
                &q.statuses,
                after.as_ref(),
                q.page_size.get(),
            )
            .await?;
        Ok(list_reply(page))
    }

    pub(crate) async fn list_seller_orders(
        &self,
        request: Request<pb::ListSellerOrdersRequest>,
    ) -> Result<pb::ListOrdersReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = ListSellerOrders::try_from(request.get_ref())?;
        may_list_seller(&caller, q.merchant)?;
        let after = Cursor::parse_token(&q.page_token)?;
        let sellers = self
            .orders
            .sellers
            .caught_up(&q.consistency_token, self.config.consistency_bound)
            .await?;
        let page = sellers
            .list(
                Owner::Merchant(q.merchant),
                &q.statuses,
                after.as_ref(),
                q.page_size.get(),
            )
            .await?;
        Ok(list_reply(page))
    }

    pub(crate) async fn search_orders(
        &self,
        request: Request<pb::SearchOrdersRequest>,
    ) -> Result<pb::ListOrdersReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = SearchOrders::try_from(request.get_ref())?;
        may_search(&caller)?;
        let after = Cursor::parse_token(&q.page_token)?;
        let page = self
            .orders
            .detail
            .reader
            .search(&q.query, after.as_ref(), q.page_size.get())
            .await?;
        Ok(list_reply(page))
    }
}

/// The state of one `WatchOrder` stream.
struct Watcher {
    handler: QueryHandler,
    order_no: OrderNo,
    moved: watch::Receiver<orderflow_infra::store::Position>,
    /// Timeline entries already sent.
    sent: usize,
    done: bool,
}

impl Watcher {
    /// The next status changes (one or more), or `None` when the stream is over.
    async fn next(mut self) -> Option<(Vec<Result<pb::OrderUpdate, Status>>, Self)> {
        loop {
            if self.done {
                return None;
            }
            tokio::select! {
                changed = self.moved.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.handler.shutdown.cancelled() => return None,
            }
            self.moved.borrow_and_update();
            let view = match self.handler.orders.detail.reader.get(&self.order_no).await {
                Ok(Some(view)) => view,
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Some((vec![Err(Status::from(QueryError::from(e)))], self));
                }
            };
            if view.timeline.len() <= self.sent {
                continue;
            }
            let updates = view.timeline[self.sent..]
                .iter()
                .map(|c| Ok(convert::update(&view, c)))
                .collect();
            self.sent = view.timeline.len();
            self.done = view.status.is_terminal();
            return Some((updates, self));
        }
    }
}
