//! The bus's own tests: the conformance suite on both adapters, and the relay and the ordered
//! consumer end to end (real nats-server, in-memory or PostgreSQL checkpoints).

mod faults;
mod ordered;
mod pipelined;
mod relay;

crate::bus_conformance_suite!(in_process, crate::testing::bus::in_process_bus());
crate::bus_conformance_suite!(nats, crate::testing::bus::nats_bus());

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use orderflow_domain::Shard;

use crate::bus::{EventHandler, HandlerError};
use crate::store::{Position, RecordedEvent};

/// A handler that records what it saw, per shard, in order.
#[derive(Clone, Default)]
pub(super) struct Recorder {
    pub seen: Arc<Mutex<BTreeMap<Shard, Vec<Position>>>>,
    pub ids: Arc<Mutex<HashMap<uuid::Uuid, usize>>>,
}

impl Recorder {
    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().values().map(Vec::len).sum()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .entry(event.shard)
            .or_default()
            .push(event.position);
        *self.ids.lock().unwrap().entry(event.event_id).or_default() += 1;
        Ok(())
    }
}

/// Asserts every shard's positions are exactly 1..=head.
pub(super) fn assert_each_shard_complete_in_order(
    seen: &BTreeMap<Shard, Vec<Position>>,
    heads: &BTreeMap<Shard, Position>,
) {
    for (shard, head) in heads {
        let got: Vec<u64> = seen
            .get(shard)
            .map(|v| v.iter().map(|p| p.get()).collect())
            .unwrap_or_default();
        let want: Vec<u64> = (1..=head.get()).collect();
        assert_eq!(got, want, "shard {shard}: positions seen");
    }
}
