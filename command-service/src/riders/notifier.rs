//! The notifier: offers every paid order to the riders nearest its merchant, round after
//! round, until one grabs it (seed 000: 通知一定范围内的外卖骑士抢单).
//!
//! A durable process manager: an [`OrderedConsumer`] named [`NOTIFIER_CONSUMER`] over every
//! shard, checkpointed, dead-lettering what it cannot handle. It reacts to two order events:
//! - `OrderPaid` → round 1 at `offer_radius_m`;
//! - `OfferExpired { round: n }` (the order is PAID again) → round n + 1, the radius doubled
//!   per round up to 50 km ([`OfferPolicy::radius_m`]).
//!
//! A round picks up to `offer_fanout` online riders with room from the [`RiderGeoIndex`],
//! appends `NotifyRiders` on the order (an empty list too: the window still expires and the
//! next round looks wider), then publishes one protobuf `orderflow.v1.Offer` per rider on
//! `{prefix}.riders.{rider_id}.offers`.
//!
//! Idempotency: the round's command id (`notifier:offer:{order_no}:{round}`) and offer id
//! (`{order_no}-r{round}`) are functions of the order and the round, so an event handled again
//! (redelivery, restart before the checkpoint) re-sends the same command, which the store
//! answers with the first round's events instead of appending a second round. The offer id is
//! the fencing token: a grab must present the current round's id, and ids are never reused
//! because rounds are.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::merchant::Merchant;
use orderflow_domain::order::{
    Order, OrderCommand, OrderEvent, OrderStatus, PlacedOrder, RidersNotified, MAX_RADIUS_M,
};
use orderflow_domain::{GeoPoint, OfferId, OrderNo, RefusalKind, RiderId};
use orderflow_infra::bus::{
    CheckpointStore, EventBus, EventHandler, HandlerError, OrderedConsumer, OrderedConsumerConfig,
    OutgoingMessage,
};
use orderflow_infra::store::{CommandId, RecordedEvent};
use orderflow_proto::convert::to_proto;
use orderflow_proto::v1 as pb;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{RiderFilter, RiderGeoIndex, RidersError};
use crate::clock::Clock;
use crate::config::CommandConfig;
use crate::error::CommandError;
use crate::execute::{decode, CommandMeta, Executor};

/// The durable consumer's name (also its checkpoint name and dead-letter subject token).
pub const NOTIFIER_CONSUMER: &str = "notifier";
/// The actor recorded on the rounds it appends (`system:notifier`).
pub const NOTIFIER_COMPONENT: &str = "notifier";
/// `Content-Type` of an offer message: the protobuf encoding of `orderflow.v1.Offer`.
pub const OFFER_CONTENT_TYPE: &str = "application/x-protobuf; proto=orderflow.v1.Offer";
/// Header carrying the offer id, so a rider app can drop a repeat without decoding.
pub const OFFER_ID_HEADER: &str = "Orderflow-Offer-Id";

/// The event types the notifier reacts to (pinned against the domain by a test).
const ORDER_PAID: &str = "OrderPaid";
const OFFER_EXPIRED: &str = "OfferExpired";
/// Each re-offer multiplies the radius by this, up to [`MAX_RADIUS_M`].
const WIDEN_FACTOR: u32 = 2;
/// Past `max_rounds`, each round's window doubles, up to this many normal windows
/// (8 minutes with the default 30 s window).
const MAX_WINDOW_FACTOR: u32 = 16;

/// How offers are made: the command side's offer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPolicy {
    /// Riders offered per round, nearest first (`ORDERFLOW_OFFER_FANOUT`).
    pub fanout: usize,
    /// Radius of round 1, metres (`ORDERFLOW_OFFER_RADIUS_M`).
    pub first_radius_m: u32,
    /// How long a round stays open (`ORDERFLOW_OFFER_WINDOW`).
    pub window: Duration,
    /// Rounds at the normal window (`ORDERFLOW_OFFER_MAX_ROUNDS`); see [`OfferPolicy::window`].
    pub max_rounds: u32,
}

impl OfferPolicy {
    pub fn from_config(config: &CommandConfig) -> Self {
        OfferPolicy {
            fanout: usize::try_from(config.offer_fanout).unwrap_or(usize::MAX),
            first_radius_m: config.offer_radius_m,
            window: config.offer_window,
            max_rounds: config.offer_max_rounds,
        }
    }

    /// How long a round stays open. Up to `max_rounds`, the normal window. After that nobody
    /// near has taken the order for `max_rounds` windows: ops are alerted (once, at round
    /// `max_rounds + 1`), and the order is still offered, at the widest radius, with the
    /// window doubling per round up to 16 windows. The buyer has paid and a PAID order cannot
    /// be cancelled, so stopping would strand it; offering on, slower, keeps it findable by
    /// a rider who comes online later without flooding riders and the log with rounds.
    pub fn window(&self, round: u32) -> Duration {
        let past = round.saturating_sub(self.max_rounds);
        let factor = WIDEN_FACTOR
            .checked_pow(past)
            .unwrap_or(u32::MAX)
            .min(MAX_WINDOW_FACTOR);
        self.window.saturating_mul(factor)
    }

    /// Whether this round is the first past the cap, the one that alerts ops.
    pub fn alerts(&self, round: u32) -> bool {
        round == self.max_rounds.saturating_add(1)
    }

    /// The radius of a round: the first radius doubled for every earlier round, capped at
    /// the contract's 50 km (and at least 1 m, which the domain requires).
    pub fn radius_m(&self, round: u32) -> u32 {
        let widenings = round.saturating_sub(1);
        let factor = WIDEN_FACTOR.checked_pow(widenings).unwrap_or(u32::MAX);
        self.first_radius_m
            .saturating_mul(factor)
            .clamp(1, MAX_RADIUS_M)
    }
}

/// The offer id of an order's round: `{order_no}-r{round}` (at most 36 characters of
/// `[0-9r-]`). Deterministic so a redelivered event re-sends the same round.
pub fn offer_id(order_no: &OrderNo, round: u32) -> Result<OfferId, RidersError> {
    Ok(OfferId::parse(format!("{order_no}-r{round}"))?)
}

/// Decodes an offer message's body, for rider apps and tests.
pub fn decode_offer(payload: &[u8]) -> Result<pb::Offer, prost::DecodeError> {
    pb::Offer::decode(payload)
}

/// The notifier process manager; see the module docs.
pub struct Notifier {
    bus: Arc<dyn EventBus>,
    checkpoints: Arc<dyn CheckpointStore>,
    consumer: OrderedConsumerConfig,
    handler: NotifierHandler,
}

impl Notifier {
    pub fn new(
        executor: Executor,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        index: Arc<RiderGeoIndex>,
        clock: Arc<dyn Clock>,
        policy: OfferPolicy,
    ) -> Self {
        Notifier {
            handler: NotifierHandler {
                executor,
                bus: bus.clone(),
                index,
                clock,
                policy,
            },
            bus,
            checkpoints,
            consumer: OrderedConsumerConfig::new(NOTIFIER_CONSUMER),
        }
    }

    /// Overrides the consumer settings (name, batch, timings), e.g. for tests.
    pub fn with_consumer_config(mut self, consumer: OrderedConsumerConfig) -> Self {
        self.consumer = consumer;
        self
    }

    /// Waits for the index to have replayed the log (offering from a half-built index would
    /// skip riders who are there), then handles order events until `shutdown`; on shutdown
    /// the consumer finishes the event in hand and saves its checkpoint.
    #[instrument(skip_all, fields(consumer = %self.consumer.name))]
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RidersError> {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = self.handler.index.wait_ready() => {}
        }
        let consumer = OrderedConsumer::new(self.bus, self.checkpoints, self.consumer).await?;
        consumer.run(self.handler, shutdown).await?;
        Ok(())
    }
}

pub(crate) struct NotifierHandler {
    executor: Executor,
    bus: Arc<dyn EventBus>,
    index: Arc<RiderGeoIndex>,
    clock: Arc<dyn Clock>,
    policy: OfferPolicy,
}

#[async_trait]
impl EventHandler for NotifierHandler {
    /// Most events are none of the notifier's business: the consumer skips them undecoded.
    fn wants(&self, category: &str, event_type: &str) -> bool {
        category == orderflow_domain::stream::ORDER_CATEGORY
            && matches!(event_type, ORDER_PAID | OFFER_EXPIRED)
    }

    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if !self.wants(event.stream.category(), &event.event_type) {
            return Ok(());
        }
        let round = match event.event_type.as_str() {
            ORDER_PAID => 1,
            OFFER_EXPIRED => match decode::<Order>(event)? {
                OrderEvent::OfferExpired(e) => e.round.saturating_add(1),
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        self.offer_round(event, round).await?;
        Ok(())
    }
}

impl NotifierHandler {
    /// One round for the order of `cause`: decide it (or find it decided), then publish it.
    #[instrument(skip_all, fields(stream = %cause.stream, round = round))]
    pub(crate) async fn offer_round(
        &self,
        cause: &RecordedEvent,
        round: u32,
    ) -> Result<(), RidersError> {
        let stream = &cause.stream;
        let loaded = self.executor.load::<Order>(stream).await?;
        let order = loaded
            .state
            .order()
            .ok_or_else(|| RidersError::OrderNotFound(stream.clone()))?;
        let pickup = self.pickup(order).await?;
        let radius_m = self.policy.radius_m(round);
        let riders: Vec<RiderId> = self
            .index
            .nearest(pickup, radius_m, self.policy.fanout, RiderFilter::HasRoom)
            .into_iter()
            .map(|r| r.rider)
            .collect();
        let now = self.clock.now();
        let command = OrderCommand::NotifyRiders {
            offer_id: offer_id(&order.order_no, round)?,
            round,
            riders,
            radius_m,
            expires_at: now.plus(self.policy.window(round)),
            at: now,
        };
        let command_id = CommandId::parse(format!("notifier:offer:{}:{round}", order.order_no))?;
        let meta = CommandMeta::caused_by(cause, NOTIFIER_COMPONENT, command_id, now);
        let done = match self
            .executor
            .execute::<Order>(stream, &command, &meta)
            .await
        {
            Ok(done) => done,
            // The order moved on before this round (grabbed, or a later round exists): the
            // domain's refusal is the answer, not a failure to retry or dead-letter.
            Err(CommandError::Refused {
                kind: RefusalKind::FailedPrecondition | RefusalKind::Aborted,
                message,
                ..
            }) => {
                tracing::info!(reason = %message, "order moved on; no round");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(notified) = done.events.iter().find_map(|e| match e {
            OrderEvent::RidersNotified(n) => Some(n),
            _ => None,
        }) else {
            return Ok(());
        };
        if done.deduplicated && !is_current(order, notified) {
            // Decided before (a redelivery) and already over: republishing would only show
            // riders an offer they can no longer grab.
            tracing::debug!(offer_id = %notified.offer_id, "round already over; not republished");
            return Ok(());
        }
        // Append, then publish: the appended round is what a grab is checked against, so
        // riders only ever see offers the order recorded (publishing first could announce a
        // round the append then refuses). A crash between the two leaves the event past the
        // checkpoint; its redelivery finds the round decided and publishes it then. Offers
        // are idempotent by offer id, so a second copy is harmless.
        self.publish(order, pickup, notified).await?;
        if self.policy.alerts(round) {
            self.alert_offers_exhausted(order, cause, notified).await?;
        }
        tracing::info!(offer_id = %notified.offer_id, riders = notified.riders.len(),
            radius_m = notified.radius_m, deduplicated = done.deduplicated, "offered");
        Ok(())
    }

    /// Where the rider picks the order up: the merchant, as the index knows it, or read from
    /// its stream when the index has not seen it yet (its shard may lag the order's).
    async fn pickup(&self, order: &PlacedOrder) -> Result<GeoPoint, RidersError> {
        if let Some(location) = self.index.merchant_location(order.merchant) {
            return Ok(location);
        }
        let merchant = self
            .executor
            .load::<Merchant>(&order.merchant.stream_id())
            .await?;
        merchant
            .state
            .profile
            .map(|p| p.location)
            .ok_or(RidersError::MerchantUnknown(order.merchant))
    }

    /// Tells ops an order found no rider in `max_rounds` rounds: a durable message on
    /// `{prefix}.alerts.offers-exhausted.{order_no}`, deduplicated by order (a redelivery
    /// sends the same id).
    async fn alert_offers_exhausted(
        &self,
        order: &PlacedOrder,
        cause: &RecordedEvent,
        notified: &RidersNotified,
    ) -> Result<(), RidersError> {
        let rounds = notified.round.saturating_sub(1);
        tracing::error!(order_no = %order.order_no, rounds, "no rider took the order; ops alerted");
        let body = serde_json::json!({
            "order_no": order.order_no.to_string(),
            "merchant_id": order.merchant.get(),
            "rounds": rounds,
            "radius_m": notified.radius_m,
            "next_offer_id": notified.offer_id.to_string(),
            "next_expires_at": notified.expires_at.to_string(),
        });
        let message = OutgoingMessage::new(
            self.bus
                .subjects()
                .offers_exhausted_alert(order.order_no.as_str()),
            body.to_string().into_bytes(),
        )
        .with_msg_id(format!("offers-exhausted:{}", order.order_no))
        .with_header("Content-Type", "application/json")
        .with_header(
            "Orderflow-Correlation-Id",
            cause.metadata.correlation_id.as_str(),
        );
        self.bus.publish(message).await?;
        Ok(())
    }

    async fn publish(
        &self,
        order: &PlacedOrder,
        pickup: GeoPoint,
        notified: &RidersNotified,
    ) -> Result<(), RidersError> {
        let offer = pb::Offer {
            offer_id: notified.offer_id.to_string(),
            order_no: order.order_no.to_string(),
            merchant_id: order.merchant.get(),
            pickup: Some(pickup.into()),
            dropoff: Some(order.address.location().into()),
            expires_at: Some(to_proto::timestamp(notified.expires_at)),
        };
        let payload = offer.encode_to_vec();
        let subjects = self.bus.subjects();
        for rider in &notified.riders {
            let message = OutgoingMessage::new(
                subjects.rider_offers(rider.get().unsigned_abs()),
                payload.clone(),
            )
            .with_msg_id(format!("{}:{rider}", notified.offer_id))
            .with_header("Content-Type", OFFER_CONTENT_TYPE)
            .with_header(OFFER_ID_HEADER, notified.offer_id.to_string());
            // Core NATS, not stored: a rider app that is not listening misses it, and sees the
            // open offer through the query side instead.
            self.bus.publish_transient(message).await?;
        }
        Ok(())
    }
}

/// Whether `notified` is still the order's open round.
fn is_current(order: &PlacedOrder, notified: &RidersNotified) -> bool {
    order.status == OrderStatus::Notified
        && order
            .offer
            .as_ref()
            .is_some_and(|o| o.offer_id == notified.offer_id)
}

#[cfg(test)]
mod tests;
