//! Dead letters: what an ordered consumer gives up on goes to `{prefix}.dlq.{consumer}` with
//! the error and its origin in headers; [`redrive`] sends them back to that consumer alone.

use std::time::Duration;

use tracing::instrument;

use super::{
    validate_consumer_name, BusError, BusMessage, ConsumerConfig, EventBus, OutgoingMessage,
    MSG_ID_HEADER,
};

/// Headers of dead letters and redriven messages.
pub mod dlq_headers {
    /// The handler's last error (one line, at most 1,000 bytes).
    pub const ERROR: &str = "Orderflow-Dlq-Error";
    /// The subject the message was consumed from (where `redrive` sends it back).
    pub const SUBJECT: &str = "Orderflow-Dlq-Subject";
    pub const CONSUMER: &str = "Orderflow-Dlq-Consumer";
    /// The message's sequence in its original stream.
    pub const SEQUENCE: &str = "Orderflow-Dlq-Sequence";
    /// The original `Nats-Msg-Id` (the event id).
    pub const MSG_ID: &str = "Orderflow-Dlq-Msg-Id";
    /// On a redriven message: the only consumer that should handle it.
    pub const REDRIVE: &str = "Orderflow-Redrive";
}

const MAX_ERROR_HEADER: usize = 1_000;

pub(super) fn dead_letter_message(
    original: &BusMessage,
    subject: &str,
    consumer: &str,
    stream_sequence: u64,
    error: &(dyn std::error::Error + Send + Sync),
) -> OutgoingMessage {
    let mut text: String = error
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.len() > MAX_ERROR_HEADER {
        let mut cut = MAX_ERROR_HEADER;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let mut out = OutgoingMessage::new(subject, original.payload.clone())
        // Dead-lettering the same delivery twice (a crash before the ack) stores it once.
        .with_msg_id(format!("dlq:{consumer}:{stream_sequence}"));
    for (k, v) in original.headers.iter() {
        if k != MSG_ID_HEADER && k != dlq_headers::REDRIVE {
            out.headers.insert(k.to_owned(), v.to_owned());
        }
    }
    if let Some(id) = original.header(MSG_ID_HEADER) {
        out.headers
            .insert(dlq_headers::MSG_ID.to_owned(), id.to_owned());
    }
    out.with_header(dlq_headers::ERROR, text)
        .with_header(dlq_headers::SUBJECT, original.subject.clone())
        .with_header(dlq_headers::CONSUMER, consumer)
        .with_header(dlq_headers::SEQUENCE, stream_sequence.to_string())
}

/// Sends up to `max` of a consumer's dead letters back to their original subjects, marked
/// `Orderflow-Redrive: {consumer}` so only that consumer handles them again (out of order,
/// outside its checkpoint). Dead letters stay in the DLQ stream for the record; a durable
/// `{consumer}-redrive` consumer remembers which were already redriven. Returns how many.
#[instrument(skip_all, fields(consumer = %consumer))]
pub async fn redrive(bus: &dyn EventBus, consumer: &str, max: usize) -> Result<usize, BusError> {
    validate_consumer_name(consumer)?;
    let redriver_name = format!("{consumer}-redrive");
    validate_consumer_name(&redriver_name)?;
    let redriver = bus
        .consumer(ConsumerConfig::new(
            redriver_name,
            bus.subjects().dead_letter(consumer),
        ))
        .await?;
    let mut done = 0;
    while done < max {
        let batch = redriver
            .fetch((max - done).min(256), Duration::from_millis(200))
            .await?;
        if batch.is_empty() {
            break;
        }
        for delivery in batch {
            let m = &delivery.message;
            let Some(subject) = m.header(dlq_headers::SUBJECT) else {
                tracing::warn!(
                    seq = delivery.stream_sequence,
                    "dead letter without a subject"
                );
                delivery.term().await?;
                continue;
            };
            let mut out = OutgoingMessage::new(subject, m.payload.clone())
                // A fresh id: the original one may still be inside the dedup window.
                .with_msg_id(format!("redrive:{consumer}:{}", delivery.stream_sequence))
                .with_header(dlq_headers::REDRIVE, consumer);
            for (k, v) in m.headers.iter() {
                if !k.starts_with("Orderflow-Dlq-") && k != MSG_ID_HEADER {
                    out.headers.insert(k.to_owned(), v.to_owned());
                }
            }
            bus.publish(out).await?;
            delivery.ack().await?;
            done += 1;
        }
    }
    tracing::info!(redriven = done, "redrive done");
    Ok(done)
}
