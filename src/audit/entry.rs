//! One line of a history: when, who, what, why — the same for every stream.

use orderflow_domain::Timestamp;
use orderflow_infra::store::RecordedEvent;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Stream version (1 for the first event).
    pub version: u64,
    /// When it happened (the command's time), ISO 8601 UTC.
    pub at: String,
    /// When the store committed it.
    pub recorded_at: String,
    /// `role:subject` of the caller, or `service:orderflow:{component}` for a process manager.
    pub who: String,
    /// The event type.
    pub what: String,
    /// The event's fields, `key=value`, money as `CUR:minor`.
    pub details: String,
    pub command_id: String,
    pub correlation_id: String,
    /// The event that caused the command: `#n` when it is in this stream, else its id.
    pub caused_by: Option<String>,
    pub event_id: String,
    pub shard: u8,
    pub position: u64,
}

impl Entry {
    /// The entry of `event`; `earlier` are the stream's events before it (to name a cause
    /// in the same stream by its version).
    pub fn new(event: &RecordedEvent, earlier: &[RecordedEvent]) -> Self {
        let m = &event.metadata;
        let caused_by = m.causation_id.as_ref().map(|c| {
            earlier
                .iter()
                .find(|e| e.event_id.to_string() == c.as_str())
                .map_or_else(
                    || c.as_str().to_owned(),
                    |e| format!("#{}", e.stream_version),
                )
        });
        Entry {
            version: event.stream_version,
            at: m.occurred_at.to_string(),
            recorded_at: event.recorded_at.to_string(),
            who: format!("{}:{}", m.actor.role.as_str(), m.actor.subject),
            what: event.event_type.clone(),
            // Always JSON: a payload that would not parse shows as `null`.
            details: details(&event.payload.decode().unwrap_or_default()),
            command_id: m.command_id.as_str().to_owned(),
            correlation_id: m.correlation_id.as_str().to_owned(),
            caused_by,
            event_id: event.event_id.to_string(),
            shard: event.shard.index(),
            position: event.position.get(),
        }
    }

    /// The "why" column: the command, and what caused it.
    pub fn why(&self) -> String {
        match &self.caused_by {
            Some(cause) => format!("command {} ← {}", self.command_id, cause),
            None => format!("command {}", self.command_id),
        }
    }
}

/// The payload's fields on one line, without `at` (shown in its own column).
fn details(payload: &Value) -> String {
    match payload {
        Value::Object(fields) => fields
            .iter()
            .filter(|(k, _)| k.as_str() != "at")
            .map(|(k, v)| match v.as_i64() {
                // Times are stored as epoch milliseconds; people read them as dates.
                Some(ms) if k.ends_with("_at") || k.ends_with("deadline") => {
                    format!("{k}={}", Timestamp::from_millis(ms))
                }
                _ => format!("{k}={}", compact(v)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => compact(other),
    }
}

fn compact(value: &Value) -> String {
    const MAX: usize = 80;
    match value {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.len() == 2 && o.contains_key("currency_code") => format!(
            "{}:{}",
            o["currency_code"].as_str().unwrap_or("?"),
            o["minor_units"]
        ),
        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
            format!(
                "[{}]",
                items.iter().map(compact).collect::<Vec<_>>().join(",")
            )
        }
        Value::Array(items) => format!("[{} items]", items.len()),
        other => {
            let text = other.to_string();
            if text.chars().count() > MAX {
                text.chars().take(MAX - 1).chain(['…']).collect()
            } else {
                text
            }
        }
    }
}
