//! The catalog RPCs a buyer browses with: `ListMerchantsNearby` (over `merchant_catalog`)
//! and `GetMenu` (the merchant's row, and its dishes from `stock_ledger`: price, listed flag
//! and available units).
//!
//! Any signed-in caller may browse. A menu shows its owner, ops and admin every dish, each
//! with its `listed` flag; everyone else only the listed ones (a delisted dish cannot be
//! ordered, so a buyer has no use for it).

use orderflow_domain::MerchantId;
use orderflow_projections::merchants::NearbyCursor;
use orderflow_projections::stock::StockRow;
use orderflow_proto::convert::{GetMenu, ListMerchantsNearby};
use orderflow_proto::v1 as pb;
use tonic::Request;

use super::QueryHandler;
use crate::auth::{may_browse, sees_all_dishes};
use crate::error::QueryError;

fn dish(row: &StockRow) -> pb::Dish {
    pb::Dish {
        sku_id: row.sku.as_str().to_owned(),
        name: row.name.as_str().to_owned(),
        price: Some(row.price.into()),
        available: row.available,
        listed: row.listed,
    }
}

impl QueryHandler {
    pub(crate) async fn list_merchants_nearby(
        &self,
        request: Request<pb::ListMerchantsNearbyRequest>,
    ) -> Result<pb::ListMerchantsNearbyReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = ListMerchantsNearby::try_from(request.get_ref())?;
        may_browse(&caller)?;
        let after = NearbyCursor::parse_token(&q.page_token)?;
        let page = self
            .catalog()?
            .merchants
            .reader
            .nearby(q.location, q.radius_m, after, q.page_size.get())
            .await?;
        Ok(pb::ListMerchantsNearbyReply {
            merchants: page
                .merchants
                .iter()
                .map(|m| pb::MerchantView {
                    merchant_id: m.row.merchant.get(),
                    name: m.row.name.as_str().to_owned(),
                    location: Some(m.row.location.into()),
                    distance_m: i32::try_from(m.distance_m).unwrap_or(i32::MAX),
                    open: m.row.open,
                })
                .collect(),
            next_page_token: page.next.map(|c| c.token()).unwrap_or_default(),
        })
    }

    pub(crate) async fn get_menu(
        &self,
        request: Request<pb::GetMenuRequest>,
    ) -> Result<pb::Menu, QueryError> {
        let caller = self.caller(&request)?;
        let q = GetMenu::try_from(request.get_ref())?;
        may_browse(&caller)?;
        let catalog = self.catalog()?;
        let merchant = catalog
            .merchants
            .reader
            .get(q.merchant)
            .await?
            .ok_or_else(|| not_found(q.merchant))?;
        let all = sees_all_dishes(&caller, q.merchant);
        let dishes = catalog.stock.reader.merchant_stock(q.merchant).await?;
        Ok(pb::Menu {
            merchant_id: merchant.merchant.get(),
            name: merchant.name.as_str().to_owned(),
            dishes: dishes
                .iter()
                .filter(|d| all || d.listed)
                .map(dish)
                .collect(),
        })
    }
}

fn not_found(merchant: MerchantId) -> QueryError {
    QueryError::NotFound(format!("merchant {merchant} does not exist"))
}
