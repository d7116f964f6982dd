//! The columns of an order view's row beside its JSON document, in one place: the adapters'
//! upserts ([`super::detail_pg`], [`super::lists_pg`]) and the bulk loader ([`super::bulk_pg`])
//! take them from here, so a row written by COPY cannot drift from one a projector writes.

use super::lists::ListSide;
use super::OrderView;

/// `order_detail`'s columns (the `search` tsvector is `to_tsvector('simple', search_text)`,
/// computed by PostgreSQL in both paths).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DetailColumns {
    pub order_no: String,
    pub buyer_id: i64,
    pub merchant_id: i64,
    pub status: &'static str,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
    pub search_text: String,
}

impl DetailColumns {
    pub fn of(view: &OrderView) -> Self {
        DetailColumns {
            order_no: super::key_of(&view.order_no),
            buyer_id: view.buyer.get(),
            merchant_id: view.merchant.get(),
            status: view.status.as_str(),
            created_ms: view.created_at.as_millis(),
            updated_ms: view.updated_at.as_millis(),
            version: version(view),
            search_text: view.search_text(),
        }
    }
}

/// `buyer_order` / `seller_order`'s columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListColumns {
    pub part: i16,
    pub owner_id: i64,
    pub order_no: String,
    pub status: &'static str,
    pub created_ms: i64,
    pub version: i64,
}

impl ListColumns {
    pub fn of(side: ListSide, view: &OrderView) -> Self {
        let owner = side.owner(view);
        ListColumns {
            part: owner.partition(),
            owner_id: owner.id(),
            order_no: super::key_of(&view.order_no),
            status: view.status.as_str(),
            created_ms: view.created_at.as_millis(),
            version: version(view),
        }
    }
}

fn version(view: &OrderView) -> i64 {
    i64::try_from(view.version).unwrap_or(i64::MAX)
}
