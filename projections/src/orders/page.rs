//! Newest-first paging over orders, stable while new orders arrive.
//!
//! Rows are ordered by `(created_at, order_no)` descending; a page ends at the last row it
//! shows, and the next page starts strictly below it. New orders are created *now*, above
//! every cursor handed out, so they never shift a page a client is walking through (they show
//! up when it starts again from the top). The order number breaks ties between orders created
//! in the same millisecond.
//!
//! The page token is opaque to clients: `v1.{created_at ms}.{order_no}`.

use orderflow_domain::{BuyerId, MerchantId, OrderNo, Timestamp};

use super::OrderView;

/// Where the next page starts: strictly below this row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub order_no: OrderNo,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("page_token is not one this service issued")]
pub struct InvalidPageToken;

impl Cursor {
    pub fn of(view: &OrderView) -> Self {
        Cursor {
            created_at: view.created_at,
            order_no: view.order_no.clone(),
        }
    }

    /// The empty string (proto3's default) is the first page.
    pub fn parse_token(token: &str) -> Result<Option<Self>, InvalidPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        let mut parts = token.splitn(3, '.');
        let (Some("v1"), Some(ms), Some(no)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidPageToken);
        };
        let ms = ms.parse::<i64>().map_err(|_| InvalidPageToken)?;
        let order_no = OrderNo::parse(no).map_err(|_| InvalidPageToken)?;
        Ok(Some(Cursor {
            created_at: Timestamp::from_millis(ms),
            order_no,
        }))
    }

    pub fn token(&self) -> String {
        format!("v1.{}.{}", self.created_at.as_millis(), self.order_no)
    }

    /// Whether `view` comes after this cursor in newest-first order.
    pub fn is_before(&self, view: &OrderView) -> bool {
        (view.created_at, &view.order_no) < (self.created_at, &self.order_no)
    }
}

/// One page of orders, newest first, and where the next one starts (`None`: last page).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub orders: Vec<OrderView>,
    pub next: Option<Cursor>,
}

impl Page {
    /// A page from up to `limit + 1` rows in order: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<OrderView>, limit: usize) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(Cursor::of)
        } else {
            None
        };
        Page { orders: rows, next }
    }
}

/// Whose orders a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Buyer(BuyerId),
    Merchant(MerchantId),
}

impl Owner {
    pub fn id(self) -> i64 {
        match self {
            Owner::Buyer(b) => b.get(),
            Owner::Merchant(m) => m.get(),
        }
    }

    /// The partition of the owner's rows: id % 32.
    pub fn partition(self) -> i16 {
        // Ids are positive, so the remainder is 0..=31.
        (self.id() % 32) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let cursor = Cursor {
            created_at: Timestamp::from_millis(1_795_331_832_345),
            order_no: OrderNo::parse("2026112207171234500004217").unwrap(),
        };
        let token = cursor.token();
        assert_eq!(Cursor::parse_token(&token).unwrap(), Some(cursor));
        assert_eq!(Cursor::parse_token("").unwrap(), None);
        for bad in [
            "v2.1.2026112207171234500004217",
            "v1.x.2026112207171234500004217",
            "v1.1.nope",
            "v1",
        ] {
            assert_eq!(Cursor::parse_token(bad), Err(InvalidPageToken), "{bad}");
        }
    }
}
