//! The merchant aggregate (stream `merchant-{id}`): who and where a shop is, and whether it
//! takes orders. Its dishes are sku streams (each remembers its merchant), so that a
//! reservation never needs to read this stream; the submit handler checks `is_open` and
//! fails the order with `MERCHANT_CLOSED` when it is not.

use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::domain_events;
use crate::geo::GeoPoint;
use crate::refusal::{Refusal, RefusalKind};
use crate::text::Name;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub enum MerchantCommand {
    /// Registers the shop, open for orders. Once per merchant.
    Open {
        name: Name,
        location: GeoPoint,
        at: Timestamp,
    },
    /// Stops taking orders (end of the day, holidays).
    Close {
        at: Timestamp,
    },
    Reopen {
        at: Timestamp,
    },
    Rename {
        name: Name,
        at: Timestamp,
    },
    Move {
        location: GeoPoint,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantOpened {
    pub name: Name,
    pub location: GeoPoint,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantClosed {
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantReopened {
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantRenamed {
    pub name: Name,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantMoved {
    pub location: GeoPoint,
    pub at: Timestamp,
}

domain_events! {
    /// Every event of a `merchant-{id}` stream.
    pub enum MerchantEvent {
        Opened(MerchantOpened) = "MerchantOpened" v 1,
        Closed(MerchantClosed) = "MerchantClosed" v 1,
        Reopened(MerchantReopened) = "MerchantReopened" v 1,
        Renamed(MerchantRenamed) = "MerchantRenamed" v 1,
        Moved(MerchantMoved) = "MerchantMoved" v 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerchantError {
    #[error("merchant does not exist")]
    NotFound,
    #[error("merchant was already opened")]
    AlreadyOpened,
    #[error("merchant is already closed")]
    AlreadyClosed,
    #[error("merchant is already open")]
    AlreadyOpen,
}

impl Refusal for MerchantError {
    fn kind(&self) -> RefusalKind {
        match self {
            MerchantError::NotFound => RefusalKind::NotFound,
            _ => RefusalKind::FailedPrecondition,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MerchantState {
    /// `None` until the merchant is opened.
    pub profile: Option<MerchantProfile>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MerchantProfile {
    pub name: Name,
    pub location: GeoPoint,
    pub open: bool,
}

impl MerchantState {
    pub fn is_open(&self) -> bool {
        self.profile.as_ref().is_some_and(|p| p.open)
    }
}

/// The merchant decider; see the module docs for its rules.
pub struct Merchant;

impl Decider for Merchant {
    type Command = MerchantCommand;
    type Event = MerchantEvent;
    type State = MerchantState;
    type Error = MerchantError;

    fn decide(
        command: &MerchantCommand,
        state: &MerchantState,
    ) -> Result<Vec<MerchantEvent>, MerchantError> {
        let profile = match (command, &state.profile) {
            (MerchantCommand::Open { name, location, at }, None) => {
                return Ok(vec![MerchantOpened {
                    name: name.clone(),
                    location: *location,
                    at: *at,
                }
                .into()])
            }
            (_, None) => return Err(MerchantError::NotFound),
            (_, Some(profile)) => profile,
        };
        let event: MerchantEvent = match command {
            MerchantCommand::Open { .. } => return Err(MerchantError::AlreadyOpened),
            MerchantCommand::Close { at } => {
                if !profile.open {
                    return Err(MerchantError::AlreadyClosed);
                }
                MerchantClosed { at: *at }.into()
            }
            MerchantCommand::Reopen { at } => {
                if profile.open {
                    return Err(MerchantError::AlreadyOpen);
                }
                MerchantReopened { at: *at }.into()
            }
            MerchantCommand::Rename { name, at } => MerchantRenamed {
                name: name.clone(),
                at: *at,
            }
            .into(),
            MerchantCommand::Move { location, at } => MerchantMoved {
                location: *location,
                at: *at,
            }
            .into(),
        };
        Ok(vec![event])
    }

    fn evolve(mut state: MerchantState, event: &MerchantEvent) -> MerchantState {
        if let MerchantEvent::Opened(e) = event {
            state.profile = Some(MerchantProfile {
                name: e.name.clone(),
                location: e.location,
                open: true,
            });
            return state;
        }
        // Every other event follows an `Opened`, which `decide` guarantees.
        if let Some(profile) = &mut state.profile {
            match event {
                MerchantEvent::Opened(_) => {}
                MerchantEvent::Closed(_) => profile.open = false,
                MerchantEvent::Reopened(_) => profile.open = true,
                MerchantEvent::Renamed(e) => profile.name = e.name.clone(),
                MerchantEvent::Moved(e) => profile.location = e.location,
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DomainEvent;
    use crate::testing::{self, Given};

    fn given(events: impl IntoIterator<Item = MerchantEvent>) -> Given<Merchant> {
        testing::given(events)
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn here() -> GeoPoint {
        GeoPoint::new(39.9, 116.4).unwrap()
    }

    fn opened() -> MerchantEvent {
        MerchantOpened {
            name: name("Noodle Bar"),
            location: here(),
            at: t(0),
        }
        .into()
    }

    fn open() -> MerchantCommand {
        MerchantCommand::Open {
            name: name("Noodle Bar"),
            location: here(),
            at: t(0),
        }
    }

    #[test]
    fn a_merchant_opens_once() {
        let state = given([]).when(open()).then([opened()]);
        assert!(state.is_open());
        given([opened()])
            .when(open())
            .then_error(|e| *e == MerchantError::AlreadyOpened);
    }

    #[test]
    fn commands_before_opening_are_not_found() {
        let error = given([])
            .when(MerchantCommand::Close { at: t(1) })
            .then_error(|e| *e == MerchantError::NotFound);
        assert_eq!(error.kind(), RefusalKind::NotFound);
    }

    #[test]
    fn a_merchant_closes_and_reopens() {
        let state = given([opened()])
            .when(MerchantCommand::Close { at: t(1) })
            .then([MerchantClosed { at: t(1) }.into()]);
        assert!(!state.is_open());
        given([opened(), MerchantClosed { at: t(1) }.into()])
            .when(MerchantCommand::Close { at: t(2) })
            .then_error(|e| *e == MerchantError::AlreadyClosed);
        given([opened(), MerchantClosed { at: t(1) }.into()])
            .when(MerchantCommand::Reopen { at: t(2) })
            .then([MerchantReopened { at: t(2) }.into()]);
        given([opened()])
            .when(MerchantCommand::Reopen { at: t(2) })
            .then_error(|e| *e == MerchantError::AlreadyOpen);
    }

    #[test]
    fn a_merchant_renames_and_moves() {
        let elsewhere = GeoPoint::new(31.2, 121.5).unwrap();
        let state = given([opened()])
            .when(MerchantCommand::Move {
                location: elsewhere,
                at: t(3),
            })
            .then([MerchantMoved {
                location: elsewhere,
                at: t(3),
            }
            .into()]);
        assert_eq!(state.profile.unwrap().location, elsewhere);
        let state = given([opened()])
            .when(MerchantCommand::Rename {
                name: name("Noodle Bar 2"),
                at: t(4),
            })
            .then([MerchantRenamed {
                name: name("Noodle Bar 2"),
                at: t(4),
            }
            .into()]);
        assert_eq!(state.profile.unwrap().name, name("Noodle Bar 2"));
    }

    #[test]
    fn every_merchant_event_round_trips_through_its_stored_form() {
        let events = vec![
            opened(),
            MerchantClosed { at: t(1) }.into(),
            MerchantReopened { at: t(2) }.into(),
            MerchantRenamed {
                name: name("x"),
                at: t(3),
            }
            .into(),
            MerchantMoved {
                location: here(),
                at: t(4),
            }
            .into(),
        ];
        assert_eq!(events.len(), MerchantEvent::EVENT_TYPES.len());
        for event in events {
            let payload = event.encode().unwrap();
            let back =
                MerchantEvent::decode(event.event_type(), event.event_version(), &payload).unwrap();
            assert_eq!(back, event);
        }
    }
}
