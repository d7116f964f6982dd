//! An order's timeline, and its state at the end (or `--as-of`).
//!
//! Built on the query side's audit functions (`orderflow_query_service::history`, what
//! `GetOrderHistory` and `GetOrderAsOf` answer): the same events, and the state folded by the
//! `order_detail` projection's own `OrderView::apply`, so the CLI and the RPCs agree.

use std::fmt::Write;

use orderflow_domain::{OrderNo, Timestamp};
use orderflow_infra::store::EventStore;
use orderflow_projections::orders::{order_event, OrderView};
use orderflow_query_service::history;
use orderflow_query_service::QueryError;
use serde::Serialize;

use super::Entry;

#[derive(Debug, Serialize)]
pub struct OrderHistory {
    pub order_no: String,
    /// `None`: the whole history.
    pub as_of: Option<String>,
    /// The events up to `as_of`, each with the order's status after it.
    pub events: Vec<OrderEntry>,
    /// The order at the end of `events`; `None` when nothing had happened yet.
    pub state: Option<OrderSnapshot>,
}

#[derive(Debug, Serialize)]
pub struct OrderEntry {
    #[serde(flatten)]
    pub entry: Entry,
    pub status_after: Option<String>,
}

/// What an auditor asks of an order's state.
#[derive(Debug, Serialize)]
pub struct OrderSnapshot {
    pub status: String,
    pub buyer: String,
    pub merchant: String,
    pub total: String,
    pub lines: usize,
    pub submitted_at: String,
    pub updated_at: String,
    pub payment_deadline: Option<String>,
    pub failure: Option<String>,
    pub refunded: String,
    pub rider: Option<String>,
    pub delivery_deadline: Option<String>,
    pub late: bool,
    pub compensation: Option<String>,
}

pub async fn order_history(
    store: &dyn EventStore,
    order_no: &OrderNo,
    as_of: Option<Timestamp>,
) -> anyhow::Result<OrderHistory> {
    let recorded = match history::order_events(store, order_no).await {
        Ok(events) => events,
        Err(QueryError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let until = as_of.unwrap_or(Timestamp::from_millis(i64::MAX));
    let mut view: Option<OrderView> = None;
    let mut events = Vec::new();
    for (i, event) in recorded.iter().enumerate() {
        if event.metadata.occurred_at > until {
            break;
        }
        if let Some(order_event) = order_event(event)? {
            view = OrderView::apply(view, &order_event, event.stream_version);
        }
        events.push(OrderEntry {
            entry: Entry::new(event, &recorded[..i]),
            status_after: view.as_ref().map(|v| v.status.to_string()),
        });
    }
    Ok(OrderHistory {
        order_no: order_no.to_string(),
        as_of: as_of.map(|t| t.to_string()),
        events,
        state: history::order_as_of(&recorded, until)
            .as_ref()
            .map(snapshot),
    })
}

fn snapshot(o: &OrderView) -> OrderSnapshot {
    let money = |m: &orderflow_domain::Money| format!("{}:{}", m.currency(), m.minor_units());
    OrderSnapshot {
        status: o.status.to_string(),
        buyer: o.buyer.to_string(),
        merchant: o.merchant.to_string(),
        total: money(&o.total),
        lines: o.lines.len(),
        submitted_at: o.created_at.to_string(),
        updated_at: o.updated_at.to_string(),
        payment_deadline: o.payment_deadline.map(|t| t.to_string()),
        failure: o.failure.map(|f| format!("{f:?}")),
        refunded: money(&o.refunded),
        rider: o.rider.map(|r| r.to_string()),
        delivery_deadline: o.delivery_deadline.map(|t| t.to_string()),
        late: o.late,
        compensation: o.compensation.as_ref().map(money),
    }
}

impl OrderHistory {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let scope = self
            .as_of
            .as_ref()
            .map_or_else(String::new, |t| format!(" as of {t}"));
        let _ = writeln!(
            out,
            "order {}{scope}: {} events",
            self.order_no,
            self.events.len()
        );
        for e in &self.events {
            let entry = &e.entry;
            let status = e.status_after.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "{:>3}  {}  {:<28} {:<18} → {status}",
                entry.version, entry.at, entry.who, entry.what
            );
            if !entry.details.is_empty() {
                let _ = writeln!(out, "     {}", entry.details);
            }
            let _ = writeln!(
                out,
                "     why: {}  (correlation {})",
                entry.why(),
                entry.correlation_id
            );
        }
        match &self.state {
            None => {
                let _ = writeln!(out, "state: no such order{scope}");
            }
            Some(s) => {
                let _ = writeln!(
                    out,
                    "state{scope}: {} — buyer {}, merchant {}, total {} ({} lines), refunded {}",
                    s.status, s.buyer, s.merchant, s.total, s.lines, s.refunded
                );
                let optional = [
                    ("payment deadline", &s.payment_deadline),
                    ("failure", &s.failure),
                    ("rider", &s.rider),
                    ("delivery deadline", &s.delivery_deadline),
                    ("compensation", &s.compensation),
                ];
                for (label, value) in optional {
                    if let Some(value) = value {
                        let _ = writeln!(out, "  {label}: {value}");
                    }
                }
                if s.late {
                    let _ = writeln!(out, "  delivered late");
                }
            }
        }
        out
    }
}
