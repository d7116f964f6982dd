//! `merchant_catalog`: one row per merchant (name, location, open) for browsing — merchants
//! near a point ([`MerchantReader::nearby`]) and the header of a menu ([`MerchantReader::get`];
//! the dishes come from the stock ledger, [`crate::stock`]).
//!
//! **Nearby search: a bounding box, then haversine.** Each adapter first narrows to the
//! latitude/longitude box around the point (an index range scan in PostgreSQL), then measures
//! every candidate with the domain's own [`GeoPoint::distance_m`] and pages with
//! [`nearest_page`], so memory and PostgreSQL answer identically to the metre. Why not the
//! H3 index the command side uses for riders: merchants barely move and a city holds a few
//! thousand, so a box over a B-tree is as selective at the contract's radii (≤ 50 km) and
//! needs no H3 dependency on the read side (which must not depend on `command-service`).
//!
//! - this module: the row, its pure fold, the read port, the nearby paging;
//! - [`memory`]: the in-memory twin; [`pg`]: the PostgreSQL adapter (migration 0005).

pub mod memory;
pub mod pg;

use std::collections::HashMap;

use async_trait::async_trait;
use orderflow_domain::merchant::MerchantEvent;
use orderflow_domain::{DomainEvent, GeoPoint, MerchantId, Name};
use orderflow_infra::store::{Position, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::error::ProjectionError;
use crate::orders::InvalidPageToken;

pub use memory::MemoryMerchantCatalog;
pub use pg::PgMerchantCatalog;

/// The projection's name, its table and the `{view}` of its row changes.
pub const MERCHANT_CATALOG: &str = "merchant_catalog";

const MERCHANT_CATEGORY: &str = "merchant";

/// Metres per degree of latitude (and of longitude at the equator), for the search box.
const METRES_PER_DEGREE: f64 = 111_320.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantRow {
    pub merchant: MerchantId,
    pub name: Name,
    pub location: GeoPoint,
    pub open: bool,
    /// The last stream version folded in: an event at or below it changes nothing.
    pub version: u64,
}

impl MerchantRow {
    /// `merchant`'s row after the `version`-th event of its stream; `None` for a history
    /// that does not start with `MerchantOpened` (corrupt: inventing a shop would be worse).
    pub fn apply(
        merchant: MerchantId,
        row: Option<&MerchantRow>,
        event: &MerchantEvent,
        version: u64,
    ) -> Option<Self> {
        if let Some(row) = row {
            if version <= row.version {
                return Some(row.clone());
            }
        }
        let mut next = match (row, event) {
            (_, MerchantEvent::Opened(e)) => MerchantRow {
                merchant,
                name: e.name.clone(),
                location: e.location,
                open: true,
                version,
            },
            (Some(row), _) => row.clone(),
            (None, _) => return None,
        };
        next.version = version;
        match event {
            MerchantEvent::Opened(_) => {}
            MerchantEvent::Closed(_) => next.open = false,
            MerchantEvent::Reopened(_) => next.open = true,
            MerchantEvent::Renamed(e) => next.name = e.name.clone(),
            MerchantEvent::Moved(e) => next.location = e.location,
        }
        Some(next)
    }
}

/// One merchant in a nearby search.
#[derive(Debug, Clone, PartialEq)]
pub struct NearbyMerchant {
    pub row: MerchantRow,
    /// Whole metres from the search point (rounded), the sort key.
    pub distance_m: u32,
}

/// Where the next page of a nearby search starts: strictly after (distance, merchant id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NearbyCursor {
    pub distance_m: u32,
    pub merchant: MerchantId,
}

impl NearbyCursor {
    /// The empty string is the first page; otherwise `n1.{distance_m}.{merchant_id}`.
    pub fn parse_token(token: &str) -> Result<Option<Self>, InvalidPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        let mut parts = token.splitn(3, '.');
        let (Some("n1"), Some(d), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidPageToken);
        };
        let distance_m = d.parse::<u32>().map_err(|_| InvalidPageToken)?;
        let merchant = MerchantId::parse(id).map_err(|_| InvalidPageToken)?;
        Ok(Some(NearbyCursor {
            distance_m,
            merchant,
        }))
    }

    pub fn token(&self) -> String {
        format!("n1.{}.{}", self.distance_m, self.merchant)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NearbyPage {
    pub merchants: Vec<NearbyMerchant>,
    pub next: Option<NearbyCursor>,
}

/// The latitude/longitude box holding every point within `radius_m` of `center`:
/// `(lat_min, lat_max, lng_min, lng_max)`. Near the poles (or across the antimeridian) the
/// longitude span is the whole circle, so nothing is missed.
pub fn search_box(center: GeoPoint, radius_m: u32) -> (f64, f64, f64, f64) {
    let d_lat = f64::from(radius_m) / METRES_PER_DEGREE;
    let cos = center.lat().to_radians().cos();
    let d_lng = if cos < 0.01 { 360.0 } else { d_lat / cos };
    let (lng_min, lng_max) = if center.lng() - d_lng < -180.0 || center.lng() + d_lng > 180.0 {
        (-180.0, 180.0)
    } else {
        (center.lng() - d_lng, center.lng() + d_lng)
    };
    (
        (center.lat() - d_lat).max(-90.0),
        (center.lat() + d_lat).min(90.0),
        lng_min,
        lng_max,
    )
}

/// The page of `candidates` (a superset, e.g. a search box) within `radius_m` of `center`,
/// nearest first (merchant id breaks ties), after `after`, at most `limit`.
pub fn nearest_page(
    candidates: impl IntoIterator<Item = MerchantRow>,
    center: GeoPoint,
    radius_m: u32,
    after: Option<NearbyCursor>,
    limit: usize,
) -> NearbyPage {
    let mut found: Vec<NearbyMerchant> = candidates
        .into_iter()
        .filter_map(|row| {
            let d = center.distance_m(&row.location);
            // Within 50 km by the filter, so the rounded metres fit a u32.
            (d <= f64::from(radius_m)).then(|| NearbyMerchant {
                distance_m: d.round() as u32,
                row,
            })
        })
        .filter(|m| {
            after.is_none_or(|c| (m.distance_m, m.row.merchant) > (c.distance_m, c.merchant))
        })
        .collect();
    found.sort_by_key(|m| (m.distance_m, m.row.merchant));
    let more = found.len() > limit;
    found.truncate(limit);
    let next = more.then(|| found.last()).flatten().map(|m| NearbyCursor {
        distance_m: m.distance_m,
        merchant: m.row.merchant,
    });
    NearbyPage {
        merchants: found,
        next,
    }
}

/// Reads of the merchant catalog.
#[async_trait]
pub trait MerchantReader: Send + Sync + 'static {
    async fn get(&self, merchant: MerchantId) -> Result<Option<MerchantRow>, ProjectionError>;

    /// Merchants within `radius_m` of `center`, open or not, nearest first.
    async fn nearby(
        &self,
        center: GeoPoint,
        radius_m: u32,
        after: Option<NearbyCursor>,
        limit: usize,
    ) -> Result<NearbyPage, ProjectionError>;
}

/// Folds a batch's merchant events into `rows` (the rows before the batch, by merchant id).
/// Returns the changed ids with the position of their last change, in first-change order.
pub(crate) fn fold_merchants(
    rows: &mut HashMap<i64, MerchantRow>,
    events: &[&RecordedEvent],
) -> Vec<(i64, Position)> {
    let mut changed: Vec<(i64, Position)> = Vec::new();
    for recorded in events {
        if recorded.stream.category() != MERCHANT_CATEGORY {
            continue;
        }
        let Ok(id) = MerchantId::parse(recorded.stream.id()) else {
            tracing::error!(projection = MERCHANT_CATALOG, stream = %recorded.stream,
                "skips an event of an unreadable merchant stream");
            continue;
        };
        let event = match MerchantEvent::decode(
            &recorded.event_type,
            recorded.event_version,
            &recorded.payload,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(projection = MERCHANT_CATALOG, error = %e, stream = %recorded.stream,
                    "skips an undecodable event");
                continue;
            }
        };
        let before = rows.get(&id.get());
        let Some(row) = MerchantRow::apply(id, before, &event, recorded.stream_version) else {
            tracing::error!(projection = MERCHANT_CATALOG, stream = %recorded.stream,
                "merchant event before MerchantOpened; skipped");
            continue;
        };
        if rows.get(&id.get()) != Some(&row) {
            match changed.iter_mut().find(|(k, _)| *k == id.get()) {
                Some(entry) => entry.1 = recorded.position,
                None => changed.push((id.get(), recorded.position)),
            }
            rows.insert(id.get(), row);
        }
    }
    changed
}

/// The merchant ids a batch touches.
pub(crate) fn touched_merchants(events: &[&RecordedEvent]) -> Vec<i64> {
    let mut ids = Vec::new();
    for e in events {
        if e.stream.category() == MERCHANT_CATEGORY {
            if let Ok(id) = MerchantId::parse(e.stream.id()) {
                if !ids.contains(&id.get()) {
                    ids.push(id.get());
                }
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests;
