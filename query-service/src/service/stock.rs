//! The stock RPCs, over the `stock_ledger` projection: `GetStock` (one sku's ledger) and
//! `ListReservations` (one sku's reservation rows, by state, paged by order number).
//!
//! Both are the merchant's business data: who owns a sku is in its ledger row, so the check
//! runs after the read ([`crate::auth::may_read_stock`]); a refused caller learns nothing but
//! the refusal. Buyers see a dish's availability through `GetMenu` instead.

use orderflow_domain::sku::ReservationState;
use orderflow_domain::SkuId;
use orderflow_projections::stock::{ReservationCursor, StockReader, StockRow};
use orderflow_proto::convert::to_proto::timestamp;
use orderflow_proto::convert::{GetStock, ListReservations};
use orderflow_proto::v1 as pb;
use tonic::Request;

use super::QueryHandler;
use crate::auth::may_read_stock;
use crate::error::QueryError;
use crate::read_models::CatalogViews;

fn not_found(sku: &SkuId) -> QueryError {
    QueryError::NotFound(format!("sku {sku} does not exist"))
}

pub(crate) fn stock_level(row: &StockRow) -> pb::StockLevel {
    pb::StockLevel {
        sku_id: row.sku.as_str().to_owned(),
        merchant_id: row.merchant.get(),
        added: row.added,
        available: row.available,
        reserved: row.reserved,
        deducted: row.deducted,
        released: row.released,
    }
}

fn reservation_state(state: ReservationState) -> i32 {
    match state {
        ReservationState::Reserved => pb::ReservationState::Reserved,
        ReservationState::Deducted => pb::ReservationState::Deducted,
        ReservationState::Released => pb::ReservationState::Released,
    }
    .into()
}

impl QueryHandler {
    pub(crate) fn catalog(&self) -> Result<&CatalogViews, QueryError> {
        self.catalog
            .as_ref()
            .ok_or(QueryError::Unimplemented("the catalog views"))
    }

    pub(crate) async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<pb::StockLevel, QueryError> {
        let caller = self.caller(&request)?;
        let q = GetStock::try_from(request.get_ref())?;
        let stock = self
            .catalog()?
            .stock
            .caught_up(&q.consistency_token, self.config.consistency_bound)
            .await?;
        let row = stock
            .stock(&q.sku)
            .await?
            .ok_or_else(|| not_found(&q.sku))?;
        may_read_stock(&caller, &row)?;
        Ok(stock_level(&row))
    }

    pub(crate) async fn list_reservations(
        &self,
        request: Request<pb::ListReservationsRequest>,
    ) -> Result<pb::ListReservationsReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = ListReservations::try_from(request.get_ref())?;
        let after = ReservationCursor::parse_token(&q.page_token)?;
        let stock: &dyn StockReader = self.catalog()?.stock.reader.as_ref();
        let row = stock
            .stock(&q.sku)
            .await?
            .ok_or_else(|| not_found(&q.sku))?;
        may_read_stock(&caller, &row)?;
        let page = stock
            .reservations(&q.sku, q.state, after.as_ref(), q.page_size.get())
            .await?;
        Ok(pb::ListReservationsReply {
            reservations: page
                .reservations
                .iter()
                .map(|r| pb::Reservation {
                    order_no: r.order_no.to_string(),
                    sku_id: r.sku.as_str().to_owned(),
                    quantity: r.quantity,
                    state: reservation_state(r.state),
                    expires_at: Some(timestamp(r.expires_at)),
                })
                .collect(),
            next_page_token: page.next.map(|c| c.token()).unwrap_or_default(),
        })
    }
}
