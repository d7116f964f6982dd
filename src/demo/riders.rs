//! Riders: they move through the city reporting where they are, listen for offers on their
//! subject (`{prefix}.riders.{id}.offers`, as a rider app would), grab some of them after a
//! moment's thought, ride to the merchant, pick up, ride to the buyer and deliver.
//!
//! Movement is simple on purpose: a rider heads straight for the next point of its route (the
//! merchant, then the buyer, of its latest job) at [`Sim::rider_speed`], or wanders to a random
//! nearby point when it has nothing to do. Delivery times are worked out from the same
//! distances and speed, plus the kitchen's preparation time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use orderflow_command_service::riders::decode_offer;
use orderflow_infra::bus::EventBus;
use orderflow_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use super::api::Caller;
use super::city::Point;
use super::clock::SimTime;
use super::ops;
use super::plan::Scenario;
use super::rng::Rng;
use super::sim::Sim;
use super::DemoError;

/// How far an idle rider wanders before picking another point.
const WANDER_M: f64 = 800.0;
/// Chance that one offered rider tries to grab an ordinary order's offer.
const GRAB_CHANCE: f64 = 0.4;

/// Where every rider is and where it is going.
pub struct Fleet {
    /// One std Mutex per rider: held to move one rider or give it a route, never across an
    /// await.
    riders: Vec<Mutex<Position>>,
}

struct Position {
    at: Point,
    route: VecDeque<Point>,
    /// Where an idle rider drifts to.
    wander_to: Point,
}

impl Fleet {
    pub fn new(sim: &Sim) -> Arc<Self> {
        Arc::new(Fleet {
            riders: sim
                .city
                .riders
                .iter()
                .map(|r| {
                    Mutex::new(Position {
                        at: r.start,
                        route: VecDeque::new(),
                        wander_to: r.start,
                    })
                })
                .collect(),
        })
    }

    fn rider(&self, id: i64) -> Option<std::sync::MutexGuard<'_, Position>> {
        let slot = self.riders.get(usize::try_from(id - 1).ok()?)?;
        Some(slot.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn at(&self, id: i64) -> Option<Point> {
        self.rider(id).map(|p| p.at)
    }
}

/// One rider's movement: every `report_every` (from a random phase), move, then report the
/// new location. Idle riders stop wandering once the hour is over.
pub async fn move_and_report(sim: Arc<Sim>, fleet: Arc<Fleet>, rider: i64, until: SimTime) {
    let mut rng = sim.rng.fork(0x0001_0000_0000 + rider as u64);
    let every = sim.report_every;
    let phase = Duration::from_millis(rng.range(0, every.as_millis().max(1) as u64));
    if !sim.clock.sleep(phase).await {
        return;
    }
    while sim.clock.elapsed() < until {
        if !sim.clock.sleep(every).await {
            return;
        }
        let step = sim.rider_speed * every.as_secs_f64();
        let moved = {
            let Some(mut p) = fleet.rider(rider) else {
                return;
            };
            let target = match p.route.front() {
                Some(next) => Some(*next),
                None if sim.winding_down() => None,
                None => {
                    if p.at.distance_m(p.wander_to) < 1.0 {
                        p.wander_to = p.at.near(&mut rng, WANDER_M);
                    }
                    Some(p.wander_to)
                }
            };
            target.map(|t| {
                p.at = p.at.towards(t, step);
                if p.at == t && p.route.front() == Some(&t) {
                    p.route.pop_front();
                }
                p.at
            })
        };
        let Some(at) = moved else { continue };
        let _ = sim
            .api
            .report_location(
                Caller::Rider(rider),
                pb::ReportLocationRequest {
                    request_id: sim.api.request_id(),
                    rider_id: rider,
                    location: Some(at.proto()),
                },
            )
            .await;
    }
}

/// Listens for every rider's offers until `shutdown`, and lets the offered rider decide.
pub async fn listen_for_offers(
    sim: Arc<Sim>,
    fleet: Arc<Fleet>,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), DemoError> {
    let filter = format!("{}.riders.*.offers", bus.subjects().prefix());
    let mut offers = bus.subscribe(&filter).await?;
    let mut rng = sim.rng.fork(0x0FFE_0000);
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = offers.next() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let Some(rider) = rider_of(&message.subject) else {
            continue;
        };
        let Ok(offer) = decode_offer(&message.payload) else {
            tracing::warn!(subject = %message.subject, "demo: undecodable offer");
            continue;
        };
        let scenario = sim
            .submitted(&offer.order_no)
            .map_or(Scenario::Ordinary, |s| s.scenario);
        // The offer-timeout orders: every rider lets the first round pass.
        let first_round = offer.offer_id.ends_with("-r1");
        if scenario == Scenario::OfferTimeout && first_round {
            continue;
        }
        if !rng.chance(GRAB_CHANCE) {
            continue;
        }
        let reaction = Duration::from_secs(rng.range(2, 20));
        let seed = rng.next_u64();
        tokio::spawn(grab(
            sim.clone(),
            fleet.clone(),
            rider,
            offer,
            reaction,
            scenario,
            seed,
        ));
    }
}

/// `{prefix}.riders.{id}.offers` → `id`.
fn rider_of(subject: &str) -> Option<i64> {
    let mut parts = subject.rsplit('.');
    let _offers = parts.next()?;
    parts.next()?.parse().ok()
}

async fn grab(
    sim: Arc<Sim>,
    fleet: Arc<Fleet>,
    rider: i64,
    offer: pb::Offer,
    reaction: Duration,
    scenario: Scenario,
    seed: u64,
) {
    if !sim.clock.sleep(reaction).await {
        return;
    }
    let grabbed = sim
        .api
        .grab_order(
            Caller::Rider(rider),
            pb::GrabOrderRequest {
                request_id: sim.api.request_id(),
                rider_id: rider,
                order_no: offer.order_no.clone(),
                offer_id: offer.offer_id.clone(),
            },
        )
        .await;
    // ABORTED: another rider was quicker; FAILED_PRECONDITION: the round is over or this
    // rider is full. Both are counted by the stats and are part of a normal hour.
    if grabbed.is_err() {
        return;
    }
    deliver(sim, fleet, rider, offer, scenario, Rng::new(seed)).await;
}

/// From grab to delivered: ride to the merchant, wait for the food, ride to the buyer.
async fn deliver(
    sim: Arc<Sim>,
    fleet: Arc<Fleet>,
    rider: i64,
    offer: pb::Offer,
    scenario: Scenario,
    mut rng: Rng,
) {
    let point = |p: Option<pb::GeoPoint>| {
        p.map(|g| Point {
            lat: g.lat,
            lng: g.lng,
        })
    };
    let (Some(pickup), Some(dropoff), Some(from)) =
        (point(offer.pickup), point(offer.dropoff), fleet.at(rider))
    else {
        return;
    };
    if let Some(mut p) = fleet.rider(rider) {
        p.route.push_back(pickup);
        p.route.push_back(dropoff);
    }
    let grabbed_at = sim.clock.elapsed();
    let ride = |a: Point, b: Point| Duration::from_secs_f64(a.distance_m(b) / sim.rider_speed);
    let cooking = Duration::from_secs(rng.range(120, 480));
    let picked_up_at = grabbed_at + ride(from, pickup).max(cooking);
    let mut delivered_at = picked_up_at + ride(pickup, dropoff) + Duration::from_secs(60);
    if scenario == Scenario::LateDelivery {
        // Lost, a flat tyre: well past the delivery deadline.
        let late_by = Duration::from_secs(rng.range(120, 600));
        delivered_at = delivered_at.max(grabbed_at + sim.config.delivery_sla + late_by);
    }
    let order_no = offer.order_no;
    if !sim.clock.sleep_until(picked_up_at).await {
        return;
    }
    let _ = sim
        .api
        .pick_up(
            Caller::Rider(rider),
            pb::PickUpRequest {
                request_id: sim.api.request_id(),
                rider_id: rider,
                order_no: order_no.clone(),
            },
        )
        .await;
    if !sim.clock.sleep_until(delivered_at).await {
        return;
    }
    let delivered = sim
        .api
        .confirm_delivery(
            Caller::Rider(rider),
            pb::ConfirmDeliveryRequest {
                request_id: sim.api.request_id(),
                rider_id: rider,
                order_no: order_no.clone(),
            },
        )
        .await;
    if let Ok(reply) = delivered {
        ops::after_delivery(sim, order_no, reply.consistency_token, rng).await;
    }
}

#[cfg(test)]
mod tests {
    use super::rider_of;

    #[test]
    fn the_rider_id_comes_from_the_offer_subject() {
        assert_eq!(rider_of("orderflow.riders.42.offers"), Some(42));
        assert_eq!(rider_of("demo-x.riders.7.offers"), Some(7));
        assert_eq!(rider_of("offers"), None);
        assert_eq!(rider_of("p.riders.x.offers"), None);
    }
}
