//! `GetOrderHistory` and `GetOrderAsOf`: straight from the event store ([`crate::history`]).

use orderflow_proto::convert::{GetOrderAsOf, GetOrderHistory};
use orderflow_proto::v1 as pb;
use tonic::Request;

use super::QueryHandler;
use crate::auth::may_read_order;
use crate::error::QueryError;
use crate::{convert, history};

impl QueryHandler {
    pub(crate) async fn get_order_history(
        &self,
        request: Request<pb::GetOrderHistoryRequest>,
    ) -> Result<pb::OrderHistory, QueryError> {
        let caller = self.caller(&request)?;
        let q = GetOrderHistory::try_from(request.get_ref())?;
        let events = history::order_events(self.store.as_ref(), &q.order_no).await?;
        let parties = history::parties(&events).ok_or_else(|| {
            QueryError::NotFound(format!("order {} was never submitted", q.order_no))
        })?;
        may_read_order(&caller, parties)?;
        Ok(history::order_history(&q.order_no, &events))
    }

    pub(crate) async fn get_order_as_of(
        &self,
        request: Request<pb::GetOrderAsOfRequest>,
    ) -> Result<pb::Order, QueryError> {
        let caller = self.caller(&request)?;
        let q = GetOrderAsOf::try_from(request.get_ref())?;
        let events = history::order_events(self.store.as_ref(), &q.order_no).await?;
        // Authorized on the whole history: a rider who grabbed the order later may read
        // how it looked before.
        let parties = history::parties(&events).ok_or_else(|| {
            QueryError::NotFound(format!("order {} was never submitted", q.order_no))
        })?;
        may_read_order(&caller, parties)?;
        let view = history::order_as_of(&events, q.as_of).ok_or_else(|| {
            QueryError::NotFound(format!("order {} did not exist yet then", q.order_no))
        })?;
        Ok(convert::order(&view))
    }
}
