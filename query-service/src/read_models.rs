//! The read models a query handler answers from: each a read port and the applied positions
//! of the projector that fills it, so a query can wait for a consistency token.
//!
//! The second part of the read side (stock ledger, reservations, catalog, ops statistics,
//! rider-geo, offers) adds its models here as more [`View`] fields.

use std::sync::Arc;
use std::time::Duration;

use orderflow_infra::store::ConsistencyToken;
use orderflow_projections::orders::{OrderDetailReader, OrderListReader};
use orderflow_projections::Applied;

use crate::error::QueryError;

/// One read model as queries see it.
pub struct View<R: ?Sized> {
    pub reader: Arc<R>,
    pub applied: Applied,
}

impl<R: ?Sized> Clone for View<R> {
    fn clone(&self) -> Self {
        View {
            reader: self.reader.clone(),
            applied: self.applied.clone(),
        }
    }
}

impl<R: ?Sized> View<R> {
    pub fn new(reader: Arc<R>, applied: Applied) -> Self {
        View { reader, applied }
    }

    /// Read-your-writes: with a token, waits (at most `bound`) until this model has applied
    /// its position; without one, answers at once.
    pub async fn caught_up(&self, token: &str, bound: Duration) -> Result<&R, QueryError> {
        if let Some(token) = ConsistencyToken::parse_optional(token)? {
            self.applied.wait_for(token, bound).await?;
        }
        Ok(&self.reader)
    }
}

/// The order views.
#[derive(Clone)]
pub struct OrderViews {
    pub detail: View<dyn OrderDetailReader>,
    pub buyers: View<dyn OrderListReader>,
    pub sellers: View<dyn OrderListReader>,
}
