//! Row changes on the bus, for analytics: one message per view per applied batch.
//!
//! A batch commits every member's rows in one transaction, so its changes go out together:
//! subject `{prefix}.views.{view}.{shard}` (two-digit shard, as the events' subjects), body
//! `{"view","shard","changes":[{"key","position","row"}, …]}` with the changes in the order
//! the batch made them (`row` is the row after the change, `null` for a delete).
//!
//! Why batches and not a message per row: a row change is small next to what JetStream does
//! per stored message (parse, dedup lookup, file-store write, acknowledgement), and a flash
//! sale changes three or four rows per event. Measured (docs/BENCHMARKS.md, session 7), a
//! message per row cost about as much CPU as the projectors' own SQL; per batch it is a few
//! messages per transaction. A consumer that wants one key filters the changes it reads.
//!
//! A message stays under [`MAX_MESSAGE_BYTES`] (NATS refuses payloads over its
//! `max_payload`, 1 MiB by default): a batch with more changes is split in order, each part a
//! message of its own. `Nats-Msg-Id` is `{view}:{shard}:{position}:{key}:{count}` of the
//! part's first change, so a part published twice is stored once.
//!
//! Delivery: after the commit, at least once while the process lives. A crash between the
//! commit and the publish loses those batches' messages (docs/read-side.md says what an outbox
//! would take).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use orderflow_infra::bus::{EventBus, OutgoingMessage, Subjects};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::model::{RowChange, RowJson};
use crate::projector::ProjectorStats;

/// Largest body of one message: a quarter of NATS's default `max_payload`, so a server with
/// the default accepts it with room for headers, and one message never holds the publisher
/// long.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// A shard's publisher: publishes each batch's row changes after their commit, batch after
/// batch, until the shard task drops its sender.
pub(crate) async fn publish_changes(
    bus: Arc<dyn EventBus>,
    stats: Arc<ProjectorStats>,
    mut batches: mpsc::Receiver<Vec<RowChange>>,
) {
    while let Some(changes) = batches.recv().await {
        let messages = change_messages(bus.subjects(), &changes);
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let subject = message.subject.clone();
            match bus.start_publish(message).await {
                Ok(ack) => pending.push(ack),
                Err(e) => {
                    stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, %subject, "cannot publish row changes");
                }
            }
        }
        for ack in pending {
            if let Err(e) = ack.await {
                stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "row changes not stored by the bus");
            }
        }
    }
}

/// One change as it appears in a message's `changes`.
#[derive(Serialize)]
struct ChangeOut<'a> {
    key: &'a str,
    position: u64,
    row: Option<&'a serde_json::value::RawValue>,
}

/// The bus messages of a batch's row changes: per view and shard, in first-change order of
/// the views, each split at [`MAX_MESSAGE_BYTES`].
pub fn change_messages(subjects: &Subjects, changes: &[RowChange]) -> Vec<OutgoingMessage> {
    // A batch is one shard's, and has a handful of views: a linear search beats a map.
    let mut groups: Vec<((&'static str, u8), Vec<&RowChange>)> = Vec::new();
    for change in changes {
        let id = (change.view, change.shard.index());
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, members)) => members.push(change),
            None => groups.push((id, vec![change])),
        }
    }
    let mut messages = Vec::with_capacity(groups.len());
    for ((view, _), members) in groups {
        let mut part = Part::default();
        for change in members {
            let encoded = serde_json::to_vec(&ChangeOut {
                key: &change.key,
                position: change.position.get(),
                row: change.row.as_ref().map(RowJson::raw),
            })
            .unwrap_or_default();
            if !part.is_empty() && part.bytes + encoded.len() + 1 > MAX_MESSAGE_BYTES {
                messages.push(std::mem::take(&mut part).message(subjects, view));
            }
            part.push(change, encoded);
        }
        if !part.is_empty() {
            messages.push(part.message(subjects, view));
        }
    }
    messages
}

/// The changes of one message being gathered.
#[derive(Default)]
struct Part<'a> {
    first: Option<&'a RowChange>,
    encoded: Vec<Vec<u8>>,
    bytes: usize,
}

impl<'a> Part<'a> {
    fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    fn push(&mut self, change: &'a RowChange, encoded: Vec<u8>) {
        self.first.get_or_insert(change);
        self.bytes += encoded.len() + 1;
        self.encoded.push(encoded);
    }

    fn message(self, subjects: &Subjects, view: &'static str) -> OutgoingMessage {
        let first = self.first.expect("a part is built only with changes in it");
        let shard = first.shard;
        let head = format!(
            "{{\"view\":{},\"shard\":{},\"changes\":[",
            serde_json::Value::from(view),
            shard.index()
        );
        let mut body = Vec::with_capacity(head.len() + self.bytes + 2);
        body.extend_from_slice(head.as_bytes());
        for (i, change) in self.encoded.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(change);
        }
        body.extend_from_slice(b"]}");
        OutgoingMessage::new(subjects.view_changes(view, shard), body)
            .with_msg_id(format!(
                "{view}:{}:{}:{}:{}",
                shard.index(),
                first.position,
                first.key,
                self.encoded.len()
            ))
            .with_header("Content-Type", "application/json")
    }
}

#[cfg(test)]
mod tests {
    use orderflow_domain::Shard;
    use orderflow_infra::store::Position;
    use serde_json::{json, Value};

    use super::*;

    fn change(view: &'static str, key: &str, position: u64, row: Option<Value>) -> RowChange {
        RowChange {
            view,
            key: key.to_owned(),
            shard: Shard::new(7).unwrap(),
            position: Position::new(position),
            row: row.map(|r| RowJson::encode(&r).unwrap()),
        }
    }

    fn body(message: &OutgoingMessage) -> Value {
        serde_json::from_slice(&message.payload).unwrap()
    }

    #[test]
    fn a_batch_makes_one_message_per_view_with_its_changes_in_order() {
        let subjects = Subjects::new("orderflow").unwrap();
        let changes = vec![
            change("order_detail", "a", 3, Some(json!({"status": "CREATED"}))),
            change("buyer_order", "a", 3, Some(json!({"owner": 1}))),
            change("order_detail", "b", 5, None),
        ];

        let messages = change_messages(&subjects, &changes);

        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].subject, "orderflow.views.order_detail.07");
        assert_eq!(
            body(&messages[0]),
            json!({"view": "order_detail", "shard": 7, "changes": [
                {"key": "a", "position": 3, "row": {"status": "CREATED"}},
                {"key": "b", "position": 5, "row": null},
            ]})
        );
        assert_eq!(messages[0].msg_id.as_deref(), Some("order_detail:7:3:a:2"));
        assert_eq!(messages[1].subject, "orderflow.views.buyer_order.07");
        assert_eq!(body(&messages[1])["changes"][0]["key"], "a");
    }

    #[test]
    fn a_batch_too_large_for_one_message_is_split_in_order() {
        let subjects = Subjects::new("orderflow").unwrap();
        // Each row about 10 KiB: 60 of them cannot fit one message.
        let filler = "x".repeat(10 * 1024);
        let changes: Vec<RowChange> = (1..=60)
            .map(|i| change("order_detail", &format!("k{i}"), i, Some(json!(filler))))
            .collect();

        let messages = change_messages(&subjects, &changes);

        assert!(messages.len() > 1, "{} messages", messages.len());
        let mut positions = Vec::new();
        for message in &messages {
            assert!(message.payload.len() <= MAX_MESSAGE_BYTES + 64);
            for c in body(message)["changes"].as_array().unwrap() {
                positions.push(c["position"].as_u64().unwrap());
            }
        }
        assert_eq!(positions, (1..=60).collect::<Vec<u64>>());
        let ids: std::collections::HashSet<_> = messages.iter().map(|m| m.msg_id.clone()).collect();
        assert_eq!(ids.len(), messages.len(), "every part has its own id");
    }

    #[test]
    fn no_changes_no_message() {
        let subjects = Subjects::new("orderflow").unwrap();
        assert!(change_messages(&subjects, &[]).is_empty());
    }
}
