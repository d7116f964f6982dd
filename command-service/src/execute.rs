//! Running a command against one aggregate: load its stream, decide, append.
//!
//! This is the only place the write side turns decisions into stored events, so the three
//! promises of a command live here:
//! - **idempotent**: a command id already in the stream returns the first answer, whatever the
//!   aggregate's state has become since (checked before deciding, so a retried submit does not
//!   meet "already exists");
//! - **optimistic**: the append expects the version it decided on; on a conflict the stream is
//!   re-read and the command decided again, a bounded number of times;
//! - **traceable**: every event carries the command's metadata (command id, correlation,
//!   causation, actor, time).

use std::sync::Arc;

use orderflow_domain::{Decider, DomainEvent, Refusal, StreamId, Timestamp};
use orderflow_infra::store::{
    AppendRequest, CausationId, CommandId, ConsistencyToken, CorrelationId, EventMetadata,
    EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError,
};

use crate::error::CommandError;

/// How many times a command is re-decided after losing an optimistic-concurrency race.
const MAX_ATTEMPTS: usize = 8;
/// Events read per page when loading a stream.
const PAGE: usize = 1_000;

/// An aggregate the executor can run: a decider whose events are stored and whose refusals
/// can be classified. Implemented for every such decider.
pub trait Aggregate:
    Decider<Command: Clone, Event: DomainEvent + Clone, Error: Refusal + std::fmt::Display>
{
}

impl<D> Aggregate for D where
    D: Decider<Command: Clone, Event: DomainEvent + Clone, Error: Refusal + std::fmt::Display>
{
}

/// Who asked, why, and when: becomes the metadata of every event the command appends.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    pub causation_id: Option<CausationId>,
    pub actor: orderflow_domain::Actor,
    pub at: Timestamp,
}

impl CommandMeta {
    /// The metadata of a command a process manager sends in reaction to `event`: the
    /// command id is derived from what it does (e.g. `saga:create:{order_no}`) so that a
    /// redelivered event re-sends the same command, which the store then answers without
    /// appending; causation is the event, correlation is carried over, the actor is the
    /// component.
    pub fn caused_by(
        event: &RecordedEvent,
        component: &str,
        command_id: CommandId,
        at: Timestamp,
    ) -> Self {
        CommandMeta {
            command_id,
            correlation_id: event.metadata.correlation_id.clone(),
            causation_id: CausationId::parse(event.event_id.to_string()).ok(),
            actor: orderflow_domain::Actor::system(component),
            at,
        }
    }

    /// The metadata every event of this command is stored with.
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            command_id: self.command_id.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            actor: self.actor.clone(),
            occurred_at: self.at,
        }
    }
}

/// An aggregate's state as loaded from its stream.
pub struct Loaded<A: Decider> {
    pub state: A::State,
    /// Stream version (number of events); 0 for a stream never written.
    pub version: u64,
    /// Position of the stream's last event in its shard's log.
    pub last_position: Option<Position>,
    recorded: Vec<RecordedEvent>,
}

impl<A: Decider> Loaded<A> {
    /// The positions of events this command id already appended, if any.
    fn previous_run(&self, command_id: &CommandId) -> Option<(Position, Vec<&RecordedEvent>)> {
        let mine: Vec<&RecordedEvent> = self
            .recorded
            .iter()
            .filter(|e| &e.metadata.command_id == command_id)
            .collect();
        mine.last().map(|last| (last.position, mine.clone()))
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<E> {
    /// The events the command appended (or, for a repeat, appended the first time).
    pub events: Vec<E>,
    /// Read-your-writes token: the last event's position; for a no-op, the stream's head.
    pub token: Option<ConsistencyToken>,
    /// True when this command id had already run: nothing was appended now.
    pub deduplicated: bool,
    /// Stream version after the command.
    pub version: u64,
}

impl<E> Executed<E> {
    /// The token as the wire carries it: empty when the stream has no events at all.
    pub fn token_string(&self) -> String {
        self.token.map(|t| t.to_string()).unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn EventStore>,
}

impl Executor {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Executor { store }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Reads a whole stream and folds it into the aggregate's state.
    pub async fn load<A: Aggregate>(&self, stream: &StreamId) -> Result<Loaded<A>, CommandError> {
        let mut recorded = Vec::new();
        loop {
            let from = recorded.len() as u64 + 1;
            let page = self.store.read_stream(stream, from, PAGE).await?;
            let done = page.len() < PAGE;
            recorded.extend(page);
            if done {
                break;
            }
        }
        let mut state = A::State::default();
        for event in &recorded {
            state = A::evolve(state, &decode::<A>(event)?);
        }
        Ok(Loaded {
            state,
            version: recorded.len() as u64,
            last_position: recorded.last().map(|e| e.position),
            recorded,
        })
    }

    /// Decides `command` on the stream's current state and appends the outcome.
    pub async fn execute<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Executed<A::Event>, CommandError> {
        self.execute_with::<A, _>(stream, meta, |_| Ok(command.clone()))
            .await
    }

    /// As [`Executor::execute`], for a stream that cannot exist yet (a freshly drawn order
    /// number): decides on the empty state and appends with `NO_STREAM`, without reading.
    /// If the stream exists after all (a retry, a collision), falls back to
    /// [`Executor::execute`], which reads it and answers a repeated command id with its
    /// first outcome.
    pub async fn create<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Executed<A::Event>, CommandError> {
        let events = A::decide(command, &A::State::default()).map_err(CommandError::refused)?;
        if events.is_empty() {
            return self.execute::<A>(stream, command, meta).await;
        }
        let request = AppendRequest {
            stream: stream.clone(),
            expected: ExpectedVersion::NO_STREAM,
            events: events.iter().map(encode).collect::<Result<_, _>>()?,
            metadata: meta.metadata(),
        };
        match self.store.append(request).await {
            Ok(outcome) if !outcome.deduplicated => Ok(Executed {
                events,
                token: Some(ConsistencyToken::new(outcome.shard, outcome.last_position)),
                deduplicated: false,
                version: outcome.last_version,
            }),
            Ok(_) | Err(StoreError::Conflict { .. }) => {
                self.execute::<A>(stream, command, meta).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// As [`Executor::execute`], for commands built from the state (e.g. a deadline computed
    /// from the order): `make` is called again on every attempt.
    pub async fn execute_with<A, F>(
        &self,
        stream: &StreamId,
        meta: &CommandMeta,
        make: F,
    ) -> Result<Executed<A::Event>, CommandError>
    where
        A: Aggregate,
        F: Fn(&A::State) -> Result<A::Command, CommandError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let loaded = self.load::<A>(stream).await?;
            if let Some((last, previous)) = loaded.previous_run(&meta.command_id) {
                let events = previous
                    .into_iter()
                    .map(decode::<A>)
                    .collect::<Result<_, _>>()?;
                return Ok(Executed {
                    events,
                    token: Some(ConsistencyToken::new(stream.shard(), last)),
                    deduplicated: true,
                    version: loaded.version,
                });
            }
            let command = make(&loaded.state)?;
            let events = A::decide(&command, &loaded.state).map_err(CommandError::refused)?;
            if events.is_empty() {
                // An exact repeat of what already happened: nothing to append.
                return Ok(Executed {
                    events,
                    token: loaded
                        .last_position
                        .map(|p| ConsistencyToken::new(stream.shard(), p)),
                    deduplicated: false,
                    version: loaded.version,
                });
            }
            let request = AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Exact(loaded.version),
                events: events.iter().map(encode).collect::<Result<_, _>>()?,
                metadata: meta.metadata(),
            };
            match self.store.append(request).await {
                Ok(outcome) if outcome.deduplicated => {
                    // A concurrent retry of the same command won the race: answer as it did.
                    let reread = self.load::<A>(stream).await?;
                    let previous = reread.previous_run(&meta.command_id);
                    let events = match previous {
                        Some((_, previous)) => previous
                            .into_iter()
                            .map(decode::<A>)
                            .collect::<Result<_, _>>()?,
                        None => Vec::new(),
                    };
                    return Ok(Executed {
                        events,
                        token: Some(ConsistencyToken::new(outcome.shard, outcome.last_position)),
                        deduplicated: true,
                        version: reread.version,
                    });
                }
                Ok(outcome) => {
                    return Ok(Executed {
                        events,
                        token: Some(ConsistencyToken::new(outcome.shard, outcome.last_position)),
                        deduplicated: false,
                        version: outcome.last_version,
                    })
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!(stream = %stream, "lost an append race, deciding again");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::Contention {
            stream: stream.to_string(),
        })
    }
}

/// A stored event back into the aggregate's event type (upcasting old versions).
pub fn decode<A: Aggregate>(event: &RecordedEvent) -> Result<A::Event, CommandError> {
    A::Event::decode(&event.event_type, event.event_version, &event.payload).map_err(|e| {
        CommandError::Corrupt(format!(
            "{} v{} at {}/{}: {e}",
            event.event_type, event.event_version, event.stream, event.stream_version
        ))
    })
}

/// A domain event into a row to append.
pub fn encode<E: DomainEvent>(event: &E) -> Result<NewEvent, CommandError> {
    let payload = event
        .encode()
        .map_err(|e| CommandError::Corrupt(format!("cannot encode {}: {e}", event.event_type())))?;
    Ok(NewEvent::new(
        event.event_type(),
        event.event_version(),
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orderflow_domain::merchant::{Merchant, MerchantCommand};
    use orderflow_domain::{Actor, GeoPoint, MerchantId, Name, RefusalKind, Role};
    use orderflow_infra::store::MemoryEventStore;

    use super::*;

    fn meta(command_id: &str) -> CommandMeta {
        CommandMeta {
            command_id: CommandId::parse(command_id).unwrap(),
            correlation_id: CorrelationId::parse("corr-1").unwrap(),
            causation_id: None,
            actor: Actor::new(Role::Merchant, "7"),
            at: Timestamp::from_millis(1_000),
        }
    }

    fn open() -> MerchantCommand {
        MerchantCommand::Open {
            name: Name::parse("Noodle Bar").unwrap(),
            location: GeoPoint::new(31.23, 121.47).unwrap(),
            at: Timestamp::from_millis(1_000),
        }
    }

    fn setup() -> (Executor, Arc<MemoryEventStore>, StreamId) {
        let store = Arc::new(MemoryEventStore::new());
        let stream = MerchantId::new(7).unwrap().stream_id();
        (Executor::new(store.clone()), store, stream)
    }

    #[tokio::test]
    async fn a_command_appends_its_events_with_its_metadata() {
        let (executor, store, stream) = setup();
        let done = executor
            .execute::<Merchant>(&stream, &open(), &meta("req-1"))
            .await
            .unwrap();
        assert_eq!(
            (done.events.len(), done.version, done.deduplicated),
            (1, 1, false)
        );
        let stored = store.read_stream(&stream, 1, 10).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].metadata.command_id.as_str(), "req-1");
        assert_eq!(
            done.token,
            Some(ConsistencyToken::new(stream.shard(), stored[0].position))
        );
    }

    #[tokio::test]
    async fn a_retried_command_returns_the_first_answer_and_appends_nothing() {
        let (executor, store, stream) = setup();
        let first = executor
            .execute::<Merchant>(&stream, &open(), &meta("req-1"))
            .await
            .unwrap();
        // The state moved on since: deciding again would refuse ("already open").
        let close = MerchantCommand::Close {
            at: Timestamp::from_millis(2_000),
        };
        executor
            .execute::<Merchant>(&stream, &close, &meta("req-2"))
            .await
            .unwrap();

        let again = executor
            .execute::<Merchant>(&stream, &open(), &meta("req-1"))
            .await
            .unwrap();
        assert!(again.deduplicated);
        assert_eq!(again.token, first.token);
        assert_eq!(again.events, first.events);
        assert_eq!(store.read_stream(&stream, 1, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_kind_and_appends_nothing() {
        let (executor, store, stream) = setup();
        executor
            .execute::<Merchant>(&stream, &open(), &meta("req-1"))
            .await
            .unwrap();
        let err = executor
            .execute::<Merchant>(&stream, &open(), &meta("req-2"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CommandError::Refused {
                    kind: RefusalKind::FailedPrecondition,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(store.read_stream(&stream, 1, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn racing_commands_are_decided_again_instead_of_failing() {
        let (executor, store, stream) = setup();
        executor
            .execute::<Merchant>(&stream, &open(), &meta("open"))
            .await
            .unwrap();
        // 16 renames race on one stream: every one must land, each decided on fresh state.
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let executor = executor.clone();
                let stream = stream.clone();
                tokio::spawn(async move {
                    let rename = MerchantCommand::Rename {
                        name: Name::parse(format!("Noodle Bar {i}")).unwrap(),
                        at: Timestamp::from_millis(2_000 + i),
                    };
                    executor
                        .execute::<Merchant>(&stream, &rename, &meta(&format!("rename-{i}")))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(store.read_stream(&stream, 1, 100).await.unwrap().len(), 17);
    }

    #[tokio::test]
    async fn create_appends_a_new_stream_and_falls_back_on_an_existing_one() {
        let (executor, store, stream) = setup();
        // Given a stream that does not exist: appended without a read, as `execute` would.
        let first = executor
            .create::<Merchant>(&stream, &open(), &meta("req-1"))
            .await
            .unwrap();
        assert_eq!((first.version, first.deduplicated), (1, false));
        // A retry of the same command finds the stream: the first answer, nothing appended.
        let again = executor
            .create::<Merchant>(&stream, &open(), &meta("req-1"))
            .await
            .unwrap();
        assert!(again.deduplicated);
        assert_eq!(again.token, first.token);
        // Another command on it is decided on the real state, not the empty one.
        let err = executor
            .create::<Merchant>(&stream, &open(), &meta("req-2"))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::Refused { .. }), "{err:?}");
        assert_eq!(store.read_stream(&stream, 1, 10).await.unwrap().len(), 1);
    }
}
