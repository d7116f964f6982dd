//! The rider RPCs, over the `rider_geo` projection: `NearbyRiders` (online riders near a
//! merchant or a point, nearest first, with the orders they carry and their capacity),
//! `ListOffers` (a rider's open offers) and `WatchOffers` (the same, then each new one).
//!
//! An offer row holds who was offered what and until when; the pickup (the merchant's point,
//! `merchant_catalog`) and the dropoff (the order's address, `order_detail`) are joined here.
//!
//! `WatchOffers` follows the projection, not the bus subject `{prefix}.riders.{id}.offers`:
//! the read side may run without a bus (embedded mode), what it streams is then exactly what
//! `ListOffers` answers (no offer seen on the bus but not yet in the view, and no gap between
//! the first list and the subscription), and it wakes on the projector's applied positions
//! like `WatchOrder` — no timer polls the database.

use std::collections::{HashSet, VecDeque};

use futures::stream;
use orderflow_domain::{OfferId, RiderId, Shard};
use orderflow_infra::store::Position;
use orderflow_projections::riders::OfferRow;
use orderflow_proto::convert::to_proto::timestamp;
use orderflow_proto::convert::{ListOffers, NearbyRiders, SearchCenter};
use orderflow_proto::v1 as pb;
use tokio::sync::watch;
use tonic::{Request, Status};

use super::{QueryHandler, ResponseStream};
use crate::auth::{may_find_riders, may_read_offers};
use crate::error::QueryError;

impl QueryHandler {
    pub(crate) async fn nearby_riders(
        &self,
        request: Request<pb::NearbyRidersRequest>,
    ) -> Result<pb::NearbyRidersReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = NearbyRiders::try_from(request.get_ref())?;
        may_find_riders(&caller, q.center)?;
        let catalog = self.catalog()?;
        let center = match q.center {
            SearchCenter::Point(p) => p,
            SearchCenter::Merchant(m) => {
                catalog
                    .merchants
                    .reader
                    .get(m)
                    .await?
                    .ok_or_else(|| QueryError::NotFound(format!("merchant {m} does not exist")))?
                    .location
            }
        };
        let riders = catalog
            .riders
            .reader
            .nearby(center, q.radius_m, q.limit as usize)
            .await?;
        Ok(pb::NearbyRidersReply {
            riders: riders
                .iter()
                .map(|r| pb::RiderView {
                    rider_id: r.row.rider.get(),
                    location: Some(r.row.location.into()),
                    distance_m: i32::try_from(r.distance_m).unwrap_or(i32::MAX),
                    active_orders: i32::try_from(r.row.active.len()).unwrap_or(i32::MAX),
                    capacity: i32::try_from(r.row.capacity).unwrap_or(i32::MAX),
                })
                .collect(),
        })
    }

    pub(crate) async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<pb::ListOffersReply, QueryError> {
        let caller = self.caller(&request)?;
        let q = ListOffers::try_from(request.get_ref())?;
        may_read_offers(&caller, q.rider)?;
        Ok(pb::ListOffersReply {
            offers: self.open_offers(q.rider).await?,
        })
    }

    /// The open offers first, then each new one as the projection records it; ends when the
    /// server shuts down.
    pub(crate) async fn watch_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<ResponseStream<pb::Offer>, QueryError> {
        let caller = self.caller(&request)?;
        let q = ListOffers::try_from(request.get_ref())?;
        may_read_offers(&caller, q.rider)?;
        let applied = &self.catalog()?.riders.applied;
        let watcher = OfferWatcher {
            handler: self.clone(),
            rider: q.rider,
            moved: Shard::all().map(|s| applied.watch(s)).collect(),
            sent: HashSet::new(),
            ready: VecDeque::new(),
        };
        Ok(Box::pin(stream::unfold(watcher, OfferWatcher::next)))
    }

    /// `rider`'s open offers at the service's now, as the contract shows them.
    async fn open_offers(&self, rider: RiderId) -> Result<Vec<pb::Offer>, QueryError> {
        let catalog = self.catalog()?;
        let rows = catalog.riders.reader.offers(rider, (self.now)()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.offer(&row).await?);
        }
        Ok(out)
    }

    async fn offer(&self, row: &OfferRow) -> Result<pb::Offer, QueryError> {
        let catalog = self.catalog()?;
        // Both views follow the order's shard, and the submit is long before any offer, so
        // the order is there; an order view still missing leaves its fields empty.
        let order = self.orders.detail.reader.get(&row.order_no).await?;
        let merchant = match &order {
            Some(o) => catalog.merchants.reader.get(o.merchant).await?,
            None => None,
        };
        Ok(pb::Offer {
            offer_id: row.offer_id.to_string(),
            order_no: row.order_no.to_string(),
            merchant_id: order.as_ref().map_or(0, |o| o.merchant.get()),
            pickup: merchant.map(|m| m.location.into()),
            dropoff: order.map(|o| o.address.location().into()),
            expires_at: Some(timestamp(row.expires_at)),
        })
    }
}

/// The state of one `WatchOffers` stream.
struct OfferWatcher {
    handler: QueryHandler,
    rider: RiderId,
    /// The projector's applied position of every shard: orders live on all of them.
    moved: Vec<watch::Receiver<Position>>,
    sent: HashSet<OfferId>,
    ready: VecDeque<pb::Offer>,
}

impl OfferWatcher {
    async fn next(mut self) -> Option<(Result<pb::Offer, Status>, Self)> {
        loop {
            if let Some(offer) = self.ready.pop_front() {
                return Some((Ok(offer), self));
            }
            // Marked seen before the read: a batch applied after it wakes the wait below.
            for rx in &mut self.moved {
                rx.borrow_and_update();
            }
            match self.handler.open_offers(self.rider).await {
                Ok(offers) => {
                    for offer in offers {
                        if let Ok(id) = OfferId::parse(offer.offer_id.clone()) {
                            if self.sent.insert(id) {
                                self.ready.push_back(offer);
                            }
                        }
                    }
                }
                Err(e) => return Some((Err(Status::from(e)), self)),
            }
            if !self.ready.is_empty() {
                continue;
            }
            let changed =
                futures::future::select_all(self.moved.iter_mut().map(|rx| Box::pin(rx.changed())));
            let gone = tokio::select! {
                (result, _, _) = changed => result.is_err(),
                _ = self.handler.shutdown.cancelled() => true,
            };
            if gone {
                return None;
            }
        }
    }
}
