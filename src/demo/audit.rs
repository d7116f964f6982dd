//! The run read back from the event log once it is over: every shard from its first event,
//! every order and SKU stream folded with the domain's own deciders. The report's numbers and
//! invariants come from here, not from what the simulated clients believe happened.

use std::collections::{BTreeMap, HashMap};

use orderflow_domain::order::{Order, OrderEvent, OrderState, PlacedOrder};
use orderflow_domain::sku::{Sku, SkuEvent, SkuState};
use orderflow_domain::{Decider, DomainEvent, Shard};
use orderflow_infra::store::{EventStore, Position, StoreError};

const PAGE: usize = 2_000;

#[derive(Default)]
pub struct Audit {
    /// Every event of every stream.
    pub events: u64,
    pub events_by_type: BTreeMap<String, u64>,
    /// Orders by number, folded.
    pub orders: HashMap<String, PlacedOrder>,
    /// SKUs by id, folded.
    pub skus: BTreeMap<String, SkuState>,
    /// Events that did not decode (must be none).
    pub unreadable: u64,
}

/// Reads the whole log.
pub async fn read_log(store: &dyn EventStore) -> Result<Audit, StoreError> {
    let mut audit = Audit::default();
    let mut orders: HashMap<String, OrderState> = HashMap::new();
    let mut skus: HashMap<String, SkuState> = HashMap::new();
    for shard in Shard::all() {
        let mut after = Position::ZERO;
        loop {
            let page = store.read_shard(shard, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for recorded in &page {
                audit.events += 1;
                *audit
                    .events_by_type
                    .entry(recorded.event_type.clone())
                    .or_default() += 1;
                let id = recorded.stream.id().to_owned();
                let (kind, version, payload) = (
                    recorded.event_type.as_str(),
                    recorded.event_version,
                    &recorded.payload,
                );
                match recorded.stream.category() {
                    "order" => match OrderEvent::decode(kind, version, payload) {
                        Ok(e) => {
                            let state = orders.remove(&id).unwrap_or_default();
                            orders.insert(id, Order::evolve(state, &e));
                        }
                        Err(_) => audit.unreadable += 1,
                    },
                    "sku" => match SkuEvent::decode(kind, version, payload) {
                        Ok(e) => {
                            let state = skus.remove(&id).unwrap_or_default();
                            skus.insert(id, Sku::evolve(state, &e));
                        }
                        Err(_) => audit.unreadable += 1,
                    },
                    _ => {}
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
    }
    audit.orders = orders
        .into_iter()
        .filter_map(|(no, state)| state.order().cloned().map(|o| (no, o)))
        .collect();
    audit.skus = skus.into_iter().collect();
    Ok(audit)
}
