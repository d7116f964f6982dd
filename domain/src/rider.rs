//! The rider aggregate (stream `rider-{id}`): online or not, where, and what it carries.
//!
//! The rider stream owns capacity, the order stream owns who won the grab. A grab handler
//! assigns here first (refused when full or offline), then grabs on the order; if the grab
//! loses the race it unassigns here again. A rider may go offline while still carrying
//! orders: it gets no new offers but finishes, and keeps reporting its location, for those.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::domain_events;
use crate::geo::GeoPoint;
use crate::order_no::OrderNo;
use crate::quantity::Capacity;
use crate::refusal::{Refusal, RefusalKind};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub enum RiderCommand {
    GoOnline {
        location: GeoPoint,
        capacity: Capacity,
        at: Timestamp,
    },
    ReportLocation {
        location: GeoPoint,
        at: Timestamp,
    },
    GoOffline {
        at: Timestamp,
    },
    /// Takes an order the rider is about to grab.
    AssignOrder {
        order_no: OrderNo,
        at: Timestamp,
    },
    /// Gives back an order whose grab lost the race.
    UnassignOrder {
        order_no: OrderNo,
        at: Timestamp,
    },
    /// The order was delivered.
    FinishOrder {
        order_no: OrderNo,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderWentOnline {
    pub location: GeoPoint,
    pub capacity: Capacity,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderLocationReported {
    pub location: GeoPoint,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiderWentOffline {
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiderOrderAssigned {
    pub order_no: OrderNo,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiderOrderUnassigned {
    pub order_no: OrderNo,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiderOrderFinished {
    pub order_no: OrderNo,
    pub at: Timestamp,
}

domain_events! {
    /// Every event of a `rider-{id}` stream.
    pub enum RiderEvent {
        WentOnline(RiderWentOnline) = "RiderWentOnline" v 1,
        LocationReported(RiderLocationReported) = "RiderLocationReported" v 1,
        WentOffline(RiderWentOffline) = "RiderWentOffline" v 1,
        OrderAssigned(RiderOrderAssigned) = "RiderOrderAssigned" v 1,
        OrderUnassigned(RiderOrderUnassigned) = "RiderOrderUnassigned" v 1,
        OrderFinished(RiderOrderFinished) = "RiderOrderFinished" v 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiderError {
    #[error("rider is offline")]
    Offline,
    #[error("rider is already online")]
    AlreadyOnline,
    #[error("rider carries {active} orders, its capacity")]
    AtCapacity { active: usize },
    #[error("rider already carries order {0}")]
    AlreadyAssigned(OrderNo),
    #[error("rider does not carry order {0}")]
    NotAssigned(OrderNo),
}

impl Refusal for RiderError {
    fn kind(&self) -> RefusalKind {
        RefusalKind::FailedPrecondition
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiderState {
    pub online: bool,
    /// The last reported location; `None` until the rider first goes online.
    pub location: Option<GeoPoint>,
    pub capacity: Option<Capacity>,
    pub active_orders: BTreeSet<OrderNo>,
    pub last_seen: Option<Timestamp>,
}

impl RiderState {
    /// Whether the rider can be offered one more order now.
    pub fn has_room(&self) -> bool {
        self.online
            && self
                .capacity
                .is_some_and(|c| self.active_orders.len() < capacity_len(c))
    }
}

fn capacity_len(c: Capacity) -> usize {
    // 1..=10 by construction.
    usize::try_from(c.get()).unwrap_or(0)
}

/// The rider decider; see the module docs for its rules.
pub struct Rider;

impl Decider for Rider {
    type Command = RiderCommand;
    type Event = RiderEvent;
    type State = RiderState;
    type Error = RiderError;

    fn decide(command: &RiderCommand, state: &RiderState) -> Result<Vec<RiderEvent>, RiderError> {
        let event: RiderEvent = match command {
            RiderCommand::GoOnline {
                location,
                capacity,
                at,
            } => {
                if state.online {
                    return Err(RiderError::AlreadyOnline);
                }
                RiderWentOnline {
                    location: *location,
                    capacity: *capacity,
                    at: *at,
                }
                .into()
            }
            RiderCommand::ReportLocation { location, at } => {
                // Offline riders still finishing deliveries are tracked; idle ones are not.
                if !state.online && state.active_orders.is_empty() {
                    return Err(RiderError::Offline);
                }
                RiderLocationReported {
                    location: *location,
                    at: *at,
                }
                .into()
            }
            RiderCommand::GoOffline { at } => {
                if !state.online {
                    return Err(RiderError::Offline);
                }
                RiderWentOffline { at: *at }.into()
            }
            RiderCommand::AssignOrder { order_no, at } => {
                if !state.online {
                    return Err(RiderError::Offline);
                }
                if state.active_orders.contains(order_no) {
                    return Err(RiderError::AlreadyAssigned(order_no.clone()));
                }
                if !state.has_room() {
                    return Err(RiderError::AtCapacity {
                        active: state.active_orders.len(),
                    });
                }
                RiderOrderAssigned {
                    order_no: order_no.clone(),
                    at: *at,
                }
                .into()
            }
            RiderCommand::UnassignOrder { order_no, at } => {
                carries(state, order_no)?;
                RiderOrderUnassigned {
                    order_no: order_no.clone(),
                    at: *at,
                }
                .into()
            }
            RiderCommand::FinishOrder { order_no, at } => {
                carries(state, order_no)?;
                RiderOrderFinished {
                    order_no: order_no.clone(),
                    at: *at,
                }
                .into()
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut state: RiderState, event: &RiderEvent) -> RiderState {
        match event {
            RiderEvent::WentOnline(e) => {
                state.online = true;
                state.location = Some(e.location);
                state.capacity = Some(e.capacity);
                state.last_seen = Some(e.at);
            }
            RiderEvent::LocationReported(e) => {
                state.location = Some(e.location);
                state.last_seen = Some(e.at);
            }
            RiderEvent::WentOffline(_) => state.online = false,
            RiderEvent::OrderAssigned(e) => {
                state.active_orders.insert(e.order_no.clone());
            }
            RiderEvent::OrderUnassigned(RiderOrderUnassigned { order_no, .. })
            | RiderEvent::OrderFinished(RiderOrderFinished { order_no, .. }) => {
                state.active_orders.remove(order_no);
            }
        }
        state
    }
}

fn carries(state: &RiderState, order_no: &OrderNo) -> Result<(), RiderError> {
    if state.active_orders.contains(order_no) {
        Ok(())
    } else {
        Err(RiderError::NotAssigned(order_no.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;
    use crate::ids::BuyerId;
    use crate::testing::{self, Given};

    fn given(events: impl IntoIterator<Item = RiderEvent>) -> Given<Rider> {
        testing::given(events)
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn here() -> GeoPoint {
        GeoPoint::new(31.23, 121.47).unwrap()
    }

    fn order(n: u32) -> OrderNo {
        OrderNo::new(t(1_000), n, BuyerId::new(3).unwrap()).unwrap()
    }

    fn online(capacity: i64) -> RiderEvent {
        RiderWentOnline {
            location: here(),
            capacity: Capacity::new(capacity).unwrap(),
            at: t(0),
        }
        .into()
    }

    fn assigned(n: u32) -> RiderEvent {
        RiderOrderAssigned {
            order_no: order(n),
            at: t(1),
        }
        .into()
    }

    fn assign(n: u32) -> RiderCommand {
        RiderCommand::AssignOrder {
            order_no: order(n),
            at: t(1),
        }
    }

    #[test]
    fn a_rider_goes_online_with_a_location_and_capacity() {
        let state = given([])
            .when(RiderCommand::GoOnline {
                location: here(),
                capacity: Capacity::new(2).unwrap(),
                at: t(0),
            })
            .then([online(2)]);
        assert!(state.online && state.has_room());
        given([online(2)])
            .when(RiderCommand::GoOnline {
                location: here(),
                capacity: Capacity::new(2).unwrap(),
                at: t(5),
            })
            .then_error(|e| *e == RiderError::AlreadyOnline);
    }

    #[test]
    fn an_idle_offline_rider_reports_no_location() {
        let report = RiderCommand::ReportLocation {
            location: here(),
            at: t(9),
        };
        given([])
            .when(report.clone())
            .then_error(|e| *e == RiderError::Offline);
        let offline: RiderEvent = RiderWentOffline { at: t(5) }.into();
        given([online(1), offline.clone()])
            .when(report.clone())
            .then_error(|e| *e == RiderError::Offline);
        // Still carrying an order: tracked until it is delivered.
        given([online(1), assigned(1), offline])
            .when(report)
            .then([RiderLocationReported {
                location: here(),
                at: t(9),
            }
            .into()]);
    }

    #[test]
    fn going_offline_needs_being_online() {
        given([])
            .when(RiderCommand::GoOffline { at: t(1) })
            .then_error(|e| *e == RiderError::Offline);
        given([online(1)])
            .when(RiderCommand::GoOffline { at: t(1) })
            .then([RiderWentOffline { at: t(1) }.into()]);
    }

    #[test]
    fn assign_only_within_capacity() {
        let state = given([online(2), assigned(1)])
            .when(assign(2))
            .then([assigned(2)]);
        assert!(!state.has_room());
        given([online(2), assigned(1), assigned(2)])
            .when(assign(3))
            .then_error(|e| *e == RiderError::AtCapacity { active: 2 });
    }

    #[test]
    fn assign_only_when_online() {
        given([])
            .when(assign(1))
            .then_error(|e| *e == RiderError::Offline);
        given([online(3), RiderWentOffline { at: t(1) }.into()])
            .when(assign(1))
            .then_error(|e| *e == RiderError::Offline);
    }

    #[test]
    fn the_same_order_cannot_be_assigned_twice() {
        given([online(3), assigned(1)])
            .when(assign(1))
            .then_error(|e| *e == RiderError::AlreadyAssigned(order(1)));
    }

    #[test]
    fn finishing_or_unassigning_frees_room_only_for_carried_orders() {
        let finish = |n| RiderCommand::FinishOrder {
            order_no: order(n),
            at: t(2),
        };
        let state = given([online(1), assigned(1)])
            .when(finish(1))
            .then([RiderOrderFinished {
                order_no: order(1),
                at: t(2),
            }
            .into()]);
        assert!(state.has_room());
        given([online(1), assigned(1)])
            .when(finish(2))
            .then_error(|e| *e == RiderError::NotAssigned(order(2)));
        let state = given([online(1), assigned(1)])
            .when(RiderCommand::UnassignOrder {
                order_no: order(1),
                at: t(2),
            })
            .then([RiderOrderUnassigned {
                order_no: order(1),
                at: t(2),
            }
            .into()]);
        assert!(state.active_orders.is_empty());
    }

    #[test]
    fn every_rider_event_round_trips_through_its_stored_form() {
        let events = vec![
            online(3),
            RiderLocationReported {
                location: here(),
                at: t(1),
            }
            .into(),
            RiderWentOffline { at: t(2) }.into(),
            assigned(1),
            RiderOrderUnassigned {
                order_no: order(1),
                at: t(3),
            }
            .into(),
            RiderOrderFinished {
                order_no: order(1),
                at: t(4),
            }
            .into(),
        ];
        assert_eq!(events.len(), RiderEvent::EVENT_TYPES.len());
        for event in events {
            let payload = event.encode().unwrap();
            let back =
                RiderEvent::decode(event.event_type(), event.event_version(), &payload).unwrap();
            assert_eq!(back, event);
        }
    }
}
