//! Between the store's types and the `events` table: the columns, the decoding of a row,
//! and the column arrays a whole batch is inserted from with one `unnest`.

use chrono::{DateTime, Utc};
use orderflow_domain::{Actor, Shard, StreamId, Timestamp};
use postgres_types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::store::{
    AppendOutcome, AppendRequest, CausationId, CommandId, CorrelationId, EventMetadata,
    EventPayload, ExpectedVersion, Position, RecordedEvent, StoreError,
};

/// The columns every read selects, in the order [`decode`] takes them.
pub(super) const SELECT_COLUMNS: &str = "shard, position, stream_id, stream_version, event_id, \
     event_type, event_version, payload, command_id, correlation_id, causation_id, actor_role, \
     actor_subject, occurred_at, recorded_at";

/// One statement for a whole batch: each parameter is an array holding one column.
pub(super) const INSERT_BATCH: &str = "INSERT INTO events (shard, position, stream_id, \
     stream_version, event_id, event_type, event_version, payload, command_id, command_events, \
     correlation_id, causation_id, actor_role, actor_subject, occurred_at) \
     SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::bigint[], $5::uuid[], \
     $6::text[], $7::smallint[], $8::jsonb[], $9::text[], $10::integer[], $11::text[], \
     $12::text[], $13::text[], $14::text[], $15::timestamptz[])";

/// One event of a queued append, ready for the insert.
#[derive(Debug)]
pub(super) struct PendingEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    /// Sent as is: the JSON text is the `jsonb` parameter.
    pub payload: EventPayload,
}

/// An append as the writer needs it: validated, in the column types.
#[derive(Debug)]
pub(super) struct PendingAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<PendingEvent>,
    pub metadata: EventMetadata,
}

impl PendingAppend {
    /// The request has passed `StoreLimits::check`.
    pub fn encode(request: AppendRequest) -> Self {
        let events = request
            .events
            .into_iter()
            .map(|e| PendingEvent {
                event_id: e.event_id,
                event_type: e.event_type,
                // The limits checked it is 1..=i16::MAX.
                event_version: i16::try_from(e.event_version).unwrap_or(i16::MAX),
                payload: e.payload,
            })
            .collect();
        PendingAppend {
            stream: request.stream,
            expected: request.expected,
            events,
            metadata: request.metadata,
        }
    }
}

impl PendingAppend {
    /// The events of this append as a read of the log will return them, once committed with
    /// `outcome` in a transaction that began at `recorded_at` (the column's default, `now()`,
    /// is the transaction's start). The payload is the text as written, which a read from the
    /// `jsonb` column returns re-rendered (equal as JSON, spaced and ordered differently).
    pub fn recorded<'a>(
        &'a self,
        outcome: &AppendOutcome,
        recorded_at: Timestamp,
    ) -> impl Iterator<Item = RecordedEvent> + 'a {
        let (shard, first_position, first_version) = (
            self.stream.shard(),
            outcome.first_position.get(),
            outcome.first_version,
        );
        self.events
            .iter()
            .enumerate()
            .map(move |(i, event)| RecordedEvent {
                shard,
                position: Position::new(first_position + i as u64),
                stream: self.stream.clone(),
                stream_version: first_version + i as u64,
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                // Checked to be 1..=i16::MAX on the way in.
                event_version: u16::try_from(event.event_version).unwrap_or(u16::MAX),
                payload: event.payload.clone(),
                metadata: self.metadata.clone(),
                recorded_at,
            })
    }
}

/// A `timestamptz` as the store's millisecond time, as [`decode`] reads it.
pub(super) fn from_datetime(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millis(t.timestamp_millis())
}

fn to_datetime(t: Timestamp) -> DateTime<Utc> {
    // Out of chrono's range (±262,000 years) is clamped; PostgreSQL then refuses it.
    DateTime::from_timestamp_millis(t.as_millis()).unwrap_or(if t.as_millis() < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The insert's parameters: one array per column, one element per event.
#[derive(Default)]
pub(super) struct BatchColumns<'a> {
    shard: Vec<i16>,
    position: Vec<i64>,
    stream_id: Vec<&'a str>,
    stream_version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    event_version: Vec<i16>,
    payload: Vec<&'a EventPayload>,
    command_id: Vec<&'a str>,
    command_events: Vec<Option<i32>>,
    correlation_id: Vec<&'a str>,
    causation_id: Vec<Option<&'a str>>,
    actor_role: Vec<&'static str>,
    actor_subject: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
}

impl<'a> BatchColumns<'a> {
    pub fn len(&self) -> usize {
        self.position.len()
    }

    /// Adds the rows of one accepted append, its first event at `first_position` and
    /// `first_version`.
    pub fn push(&mut self, append: &'a PendingAppend, first_position: u64, first_version: u64) {
        let meta = &append.metadata;
        let occurred_at = to_datetime(meta.occurred_at);
        let count = append.events.len();
        for (i, event) in append.events.iter().enumerate() {
            self.shard.push(i16::from(append.stream.shard().index()));
            self.position.push((first_position + i as u64) as i64);
            self.stream_id.push(append.stream.as_str());
            self.stream_version.push((first_version + i as u64) as i64);
            self.event_id.push(event.event_id);
            self.event_type.push(&event.event_type);
            self.event_version.push(event.event_version);
            self.payload.push(&event.payload);
            self.command_id.push(meta.command_id.as_str());
            // The first event of the append records the command (see the partial index).
            self.command_events
                .push((i == 0).then(|| i32::try_from(count).unwrap_or(i32::MAX)));
            self.correlation_id.push(meta.correlation_id.as_str());
            self.causation_id
                .push(meta.causation_id.as_ref().map(CausationId::as_str));
            self.actor_role.push(meta.actor.role.as_str());
            self.actor_subject.push(&meta.actor.subject);
            self.occurred_at.push(occurred_at);
        }
    }

    /// The parameters of [`INSERT_BATCH`], in order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.shard,
            &self.position,
            &self.stream_id,
            &self.stream_version,
            &self.event_id,
            &self.event_type,
            &self.event_version,
            &self.payload,
            &self.command_id,
            &self.command_events,
            &self.correlation_id,
            &self.causation_id,
            &self.actor_role,
            &self.actor_subject,
            &self.occurred_at,
        ]
    }
}

/// A row of [`SELECT_COLUMNS`] back to an event; anything unexpected is `Corrupt`.
pub(super) fn decode(row: &Row) -> Result<RecordedEvent, StoreError> {
    let shard: i16 = row.try_get(0).map_err(|e| corrupt(-1, -1, e))?;
    let position: i64 = row.try_get(1).map_err(|e| corrupt(shard, -1, e))?;
    let bad = |e: &dyn std::fmt::Display| corrupt(shard, position, e);
    let get_str = |i: usize| row.try_get::<_, &str>(i).map_err(|e| bad(&e));

    let stream = StreamId::parse(get_str(2)?).map_err(|e| bad(&e))?;
    let shard_value = Shard::try_from(i64::from(shard)).map_err(|e| bad(&e))?;
    if stream.shard() != shard_value {
        return Err(bad(&format!(
            "stream {stream} does not belong to this shard"
        )));
    }
    let stream_version: i64 = row.try_get(3).map_err(|e| bad(&e))?;
    let event_version: i16 = row.try_get(6).map_err(|e| bad(&e))?;
    let causation: Option<&str> = row.try_get(10).map_err(|e| bad(&e))?;
    let occurred_at: DateTime<Utc> = row.try_get(13).map_err(|e| bad(&e))?;
    let recorded_at = from_datetime(row.try_get(14).map_err(|e| bad(&e))?);
    let metadata = EventMetadata {
        command_id: CommandId::parse(get_str(8)?).map_err(|e| bad(&e))?,
        correlation_id: CorrelationId::parse(get_str(9)?).map_err(|e| bad(&e))?,
        causation_id: causation
            .map(CausationId::parse)
            .transpose()
            .map_err(|e| bad(&e))?,
        actor: Actor::new(get_str(11)?.parse().map_err(|e| bad(&e))?, get_str(12)?),
        occurred_at: Timestamp::from_millis(occurred_at.timestamp_millis()),
    };
    Ok(RecordedEvent {
        shard: shard_value,
        position: Position::new(u64::try_from(position).map_err(|e| bad(&e))?),
        stream,
        stream_version: u64::try_from(stream_version).map_err(|e| bad(&e))?,
        event_id: row.try_get(4).map_err(|e| bad(&e))?,
        event_type: get_str(5)?.to_owned(),
        event_version: u16::try_from(event_version).map_err(|e| bad(&e))?,
        payload: row.try_get(7).map_err(|e| bad(&e))?,
        metadata,
        recorded_at,
    })
}

fn corrupt(shard: i16, position: i64, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        shard: u8::try_from(shard).unwrap_or(u8::MAX),
        position: u64::try_from(position).unwrap_or(0),
        reason: reason.to_string(),
    }
}
