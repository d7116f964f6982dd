//! A given/when/then harness for deciders, so a test reads as the rule it pins:
//!
//! ```
//! use orderflow_domain::merchant::{Merchant, MerchantClosed, MerchantCommand, MerchantOpened};
//! use orderflow_domain::testing::given;
//! use orderflow_domain::{GeoPoint, Name, Timestamp};
//!
//! let opened = MerchantOpened {
//!     name: Name::parse("Noodle Bar").unwrap(),
//!     location: GeoPoint::new(39.9, 116.4).unwrap(),
//!     at: Timestamp::from_millis(0),
//! };
//! let at = Timestamp::from_millis(1);
//! given::<Merchant>([opened.into()])
//!     .when(MerchantCommand::Close { at })
//!     .then([MerchantClosed { at }.into()]);
//! ```
//!
//! Public so the command service's tests can state rules the same way.

use std::fmt::Debug;

use crate::decider::Decider;

/// What `decide` answered.
pub type Decision<D> = Result<Vec<<D as Decider>::Event>, <D as Decider>::Error>;

/// The history an aggregate has before the command.
pub fn given<D: Decider>(events: impl IntoIterator<Item = D::Event>) -> Given<D> {
    Given {
        history: events.into_iter().collect(),
    }
}

pub struct Given<D: Decider> {
    history: Vec<D::Event>,
}

impl<D: Decider> Given<D> {
    pub fn when(self, command: D::Command) -> When<D> {
        let state = D::fold(&self.history);
        let outcome = D::decide(&command, &state);
        When {
            state,
            command,
            outcome,
        }
    }

    /// The state the history folds to.
    pub fn state(&self) -> D::State {
        D::fold(&self.history)
    }
}

pub struct When<D: Decider> {
    state: D::State,
    command: D::Command,
    outcome: Decision<D>,
}

impl<D: Decider> When<D>
where
    D::Command: Debug,
    D::Event: Debug + PartialEq,
    D::Error: Debug,
{
    /// The command is accepted with exactly these events; they must also apply cleanly.
    /// Returns the state after them, for follow-up assertions.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = D::Event>) -> D::State {
        let expected: Vec<D::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "command {:?} decided other events",
                    self.command
                );
                events.iter().fold(self.state, D::evolve)
            }
            Err(error) => panic!(
                "command {:?} was refused with {error:?}, expected {expected:?}",
                self.command
            ),
        }
    }

    /// The command is an exact repeat: accepted, and nothing new happens.
    #[track_caller]
    pub fn then_nothing(self) {
        self.then([]);
    }

    /// The command is refused with an error the matcher accepts; returns the error.
    #[track_caller]
    pub fn then_error(self, matcher: impl FnOnce(&D::Error) -> bool) -> D::Error {
        match self.outcome {
            Ok(events) => panic!(
                "command {:?} was accepted with {events:?}, expected a refusal",
                self.command
            ),
            Err(error) => {
                assert!(
                    matcher(&error),
                    "command {:?} was refused with an unexpected {error:?}",
                    self.command
                );
                error
            }
        }
    }

    /// The raw outcome, for table-driven tests.
    pub fn outcome(self) -> (D::State, Decision<D>) {
        (self.state, self.outcome)
    }
}
