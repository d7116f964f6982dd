//! Riders and offers (issue 3 §4, seed 000's grab flow): the rider-geo index and the notifier
//! that offers paid orders to the nearest riders with room, round after round.
//!
//! - [`geo`]: [`RiderGeoIndex`], online riders by H3 cell, searched by exact distance;
//! - [`updater`]: [`run_index_updater`], which rebuilds the index from the event log on start
//!   and keeps it current;
//! - [`notifier`]: [`Notifier`], the durable process manager (`notifier` consumer) that appends
//!   `NotifyRiders` rounds and publishes one protobuf `Offer` per rider on
//!   `{prefix}.riders.{rider_id}.offers`.
//!
//! Wiring (the app does this): one `Arc<RiderGeoIndex>`, one task for `run_index_updater`, one
//! for `Notifier::run`, both on the same shutdown token. See `docs/riders.md`.

pub mod geo;
pub mod notifier;
pub mod updater;

pub use geo::{IndexSnapshot, NearbyRider, RiderFilter, RiderGeoIndex, CELL_RESOLUTION};
pub use notifier::{
    decode_offer, offer_id, Notifier, OfferPolicy, NOTIFIER_COMPONENT, NOTIFIER_CONSUMER,
    OFFER_CONTENT_TYPE,
};
pub use updater::{rebuild_index, run_index_updater};

use orderflow_domain::{MerchantId, StreamId};
use orderflow_infra::bus::{BusError, ConsumerError};
use orderflow_infra::store::{RecordedEvent, StoreError};

use crate::error::CommandError;

/// Why the index updater or the notifier failed.
#[derive(Debug, thiserror::Error)]
pub enum RidersError {
    /// A stored event this binary cannot read; the index skips it, the notifier dead-letters it.
    #[error("cannot read {stream} at {position}: {reason}")]
    Corrupt {
        stream: String,
        position: u64,
        reason: String,
    },
    #[error("order {0} does not exist")]
    OrderNotFound(StreamId),
    #[error("merchant {0} has no location")]
    MerchantUnknown(MerchantId),
    #[error("offer id: {0}")]
    OfferId(#[from] orderflow_domain::ids::IdError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("index updater task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl RidersError {
    pub(crate) fn corrupt(event: &RecordedEvent, reason: impl Into<String>) -> Self {
        RidersError::Corrupt {
            stream: event.stream.to_string(),
            position: event.position.get(),
            reason: reason.into(),
        }
    }
}
