//! The shape every aggregate takes: a decider.
//!
//! `decide` holds every business rule and answers a command with the events it causes, or a
//! typed refusal; `evolve` only applies an event that was already decided. Keeping the two
//! apart is what lets the store replay a stream, a projection rebuild a view, and a test state
//! a rule as `given(events).when(command).then(events)`.

/// An aggregate as a pair of pure functions over its own state.
pub trait Decider {
    type Command;
    type Event;
    /// The state before the first event of the stream.
    type State: Default;
    type Error;

    /// Every rule lives here. A command that is not allowed is an `Err`, never a silent
    /// `Ok(vec![])`; an empty answer only means "an exact repeat of what already happened".
    fn decide(
        command: &Self::Command,
        state: &Self::State,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one decided event. It must not refuse: the event is a fact.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The state after a whole history, oldest first.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), |state, event| {
                Self::evolve(state, event)
            })
    }
}
