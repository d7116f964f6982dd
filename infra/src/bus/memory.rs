//! [`InProcessBus`]: the bus port in memory, with JetStream's semantics (stored publishes,
//! message-id dedup, durable pull consumers with explicit ack or ack-all, a start sequence, ack
//! wait, nak delay and max deliver), for the embedded mode and fast tests.
//!
//! Retention is unlimited: the embedded mode is for demos and tests, not for months of events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    subject_matches, validate_consumer_name, validate_subject, AckKind, AckPolicy, Acker, BusError,
    BusMessage, ConsumerConfig, ConsumerInfo, Delivery, DurableConsumer, EventBus, OutgoingMessage,
    PendingAck, PublishAck, StreamKind, Subjects, TransientSubscription,
};

/// JetStream's default dedup window.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// Buffer of one transient subscriber; beyond it messages are dropped, as NATS drops messages
/// for a slow consumer.
const TRANSIENT_BUFFER: usize = 4096;

/// The in-process bus. Cheap to clone: clones share the same streams and consumers.
#[derive(Clone)]
pub struct InProcessBus {
    shared: Arc<Shared>,
    subjects: Subjects,
}

struct Shared {
    /// A std Mutex, not a tokio one: it is never held across an await, and every critical
    /// section is a few map operations.
    state: Mutex<State>,
    /// Wakes fetchers waiting for new messages or for a nak to fall due.
    notify: Notify,
    dedup_window: Duration,
}

#[derive(Default)]
struct State {
    /// Every stored message; sequence = index + 1 (one sequence space for all three streams,
    /// which is enough: sequences are only compared within a consumer).
    log: Vec<Stored>,
    /// Message ids per stream, as JetStream keeps them: the same id may be stored once in
    /// each stream (a refund message carries the id of the event it comes from).
    dedup: HashMap<(StreamKind, String), u64>,
    dedup_expiry: VecDeque<(Instant, (StreamKind, String))>,
    consumers: HashMap<(StreamKind, String), ConsumerState>,
    transient: Vec<(String, mpsc::Sender<BusMessage>)>,
}

/// A delivery taken under the lock: message, delivery count, stream and delivery sequences.
type Taken = (BusMessage, u32, u64, u64);

struct Stored {
    kind: StreamKind,
    message: BusMessage,
}

struct ConsumerState {
    config: ConsumerConfig,
    /// The highest sequence already looked at for new deliveries.
    cursor: u64,
    /// Delivered and not yet acknowledged, by sequence.
    pending: BTreeMap<u64, Pending>,
    /// The last delivery's sequence (every delivery, redeliveries too, takes the next one).
    delivered: u64,
    /// `AckPolicy::All`: the stream and delivery sequences of the last ack-all that counted.
    floor: (u64, u64),
}

impl ConsumerState {
    fn new(config: ConsumerConfig) -> Self {
        let cursor = config.start_sequence.map_or(0, |s| s.saturating_sub(1));
        ConsumerState {
            config,
            cursor,
            pending: BTreeMap::new(),
            delivered: 0,
            floor: (cursor, 0),
        }
    }

    fn info(&self) -> ConsumerInfo {
        let ack_floor_stream = match self.config.ack_policy {
            AckPolicy::All => self.floor.0,
            // As JetStream: below the lowest pending message, or all that was looked at.
            AckPolicy::Explicit => self
                .pending
                .keys()
                .next()
                .map_or(self.cursor, |&first| first - 1),
        };
        ConsumerInfo {
            ack_policy: self.config.ack_policy,
            ack_floor_stream,
            ack_floor_delivery: self.floor.1,
            delivered: self.delivered,
            ack_pending: self.pending.len() as u64,
        }
    }

    /// Settles a delivery (stream sequence `seq`, delivery sequence `dseq`) as JetStream does.
    fn settle(&mut self, kind: AckKind, seq: u64, dseq: u64) {
        let all = self.config.ack_policy == AckPolicy::All;
        match kind {
            // JetStream treats a term like an ack, so under ack-all it settles everything below.
            AckKind::Ack | AckKind::Term if all => {
                let (floor_seq, floor_dseq) = self.floor;
                if seq <= floor_seq || dseq <= floor_dseq {
                    return;
                }
                self.floor = (seq, dseq);
                self.pending = self.pending.split_off(&(seq + 1));
            }
            AckKind::Ack | AckKind::Term => {
                self.pending.remove(&seq);
            }
            AckKind::Nak(delay) => {
                if all && dseq <= self.floor.1 {
                    return;
                }
                if let Some(p) = self.pending.get_mut(&seq) {
                    p.due = Instant::now() + delay.unwrap_or(Duration::ZERO);
                }
            }
            AckKind::InProgress => {
                let ack_wait = self.config.ack_wait;
                if let Some(p) = self.pending.get_mut(&seq) {
                    p.due = Instant::now() + ack_wait;
                }
            }
        }
    }
}

struct Pending {
    delivered: u32,
    /// When it is due for redelivery.
    due: Instant,
}

impl InProcessBus {
    pub fn new(subjects: Subjects) -> Self {
        Self::with_dedup_window(subjects, DEFAULT_DEDUP_WINDOW)
    }

    pub fn with_dedup_window(subjects: Subjects, dedup_window: Duration) -> Self {
        InProcessBus {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                dedup_window,
            }),
            subjects,
        }
    }

    /// How many messages a stream holds.
    pub fn stream_len(&self, kind: StreamKind) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|s| s.kind == kind)
            .count()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the bus, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn store(
        &mut self,
        kind: StreamKind,
        message: OutgoingMessage,
        window: Duration,
    ) -> PublishAck {
        let now = Instant::now();
        while let Some((at, _)) = self.dedup_expiry.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, id)) = self.dedup_expiry.pop_front() {
                self.dedup.remove(&id);
            }
        }
        if let Some(id) = &message.msg_id {
            if let Some(&sequence) = self.dedup.get(&(kind, id.clone())) {
                return PublishAck {
                    sequence,
                    duplicate: true,
                };
            }
        }
        let headers = message.wire_headers().into();
        self.log.push(Stored {
            kind,
            message: BusMessage {
                subject: message.subject,
                headers,
                payload: message.payload,
            },
        });
        let sequence = self.log.len() as u64;
        if let Some(id) = message.msg_id {
            self.dedup.insert((kind, id.clone()), sequence);
            self.dedup_expiry.push_back((now, (kind, id)));
        }
        PublishAck {
            sequence,
            duplicate: false,
        }
    }

    /// Takes up to `max` deliveries for a consumer; returns them and when the next pending
    /// one falls due.
    fn take(
        &mut self,
        key: &(StreamKind, String),
        max: usize,
    ) -> Result<(Vec<Taken>, Option<Instant>), BusError> {
        let now = Instant::now();
        let State { log, consumers, .. } = self;
        let consumer = consumers
            .get_mut(key)
            .ok_or_else(|| BusError::ConsumerNotFound(key.1.clone()))?;
        let ack_wait = consumer.config.ack_wait;
        let max_deliver = consumer.config.max_deliver;
        let mut out = Vec::new();
        // Redeliveries first, oldest first, as JetStream does.
        let mut exhausted = Vec::new();
        for (&seq, p) in consumer.pending.iter_mut() {
            if out.len() >= max {
                break;
            }
            if p.due > now {
                continue;
            }
            if max_deliver.is_some_and(|m| p.delivered >= m) {
                exhausted.push(seq);
                continue;
            }
            p.delivered += 1;
            p.due = now + ack_wait;
            consumer.delivered += 1;
            let message = log[(seq - 1) as usize].message.clone();
            out.push((message, p.delivered, seq, consumer.delivered));
        }
        for seq in exhausted {
            consumer.pending.remove(&seq);
        }
        while out.len() < max
            && consumer.pending.len() < consumer.config.max_ack_pending as usize
            && (consumer.cursor as usize) < log.len()
        {
            consumer.cursor += 1;
            let stored = &log[(consumer.cursor - 1) as usize];
            if stored.kind != key.0
                || !subject_matches(&consumer.config.filter_subject, &stored.message.subject)
            {
                continue;
            }
            consumer.pending.insert(
                consumer.cursor,
                Pending {
                    delivered: 1,
                    due: now + ack_wait,
                },
            );
            consumer.delivered += 1;
            out.push((
                stored.message.clone(),
                1,
                consumer.cursor,
                consumer.delivered,
            ));
        }
        let next_due = consumer.pending.values().map(|p| p.due).min();
        Ok((out, next_due))
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn start_publish(&self, message: OutgoingMessage) -> Result<PendingAck, BusError> {
        validate_subject(&message.subject)?;
        let kind = self
            .subjects
            .stream_of(&message.subject)
            .ok_or_else(|| BusError::NoStream(message.subject.clone()))?;
        let ack = self
            .shared
            .lock()
            .store(kind, message, self.shared.dedup_window);
        self.shared.notify.notify_waiters();
        Ok(futures::future::ready(Ok(ack)).boxed())
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn DurableConsumer>, BusError> {
        validate_consumer_name(&config.name)?;
        let kind = self
            .subjects
            .stream_of(&config.filter_subject)
            .ok_or_else(|| BusError::NoStream(config.filter_subject.clone()))?;
        let key = (kind, config.name.clone());
        self.shared
            .lock()
            .consumers
            .entry(key.clone())
            .or_insert_with(|| ConsumerState::new(config));
        Ok(Box::new(InProcessConsumer {
            shared: self.shared.clone(),
            key,
        }))
    }

    async fn consumer_info(
        &self,
        stream: StreamKind,
        name: &str,
    ) -> Result<Option<ConsumerInfo>, BusError> {
        let state = self.shared.lock();
        Ok(state
            .consumers
            .get(&(stream, name.to_owned()))
            .map(ConsumerState::info))
    }

    async fn delete_consumer(&self, stream: StreamKind, name: &str) -> Result<(), BusError> {
        match self
            .shared
            .lock()
            .consumers
            .remove(&(stream, name.to_owned()))
        {
            Some(_) => Ok(()),
            None => Err(BusError::ConsumerNotFound(name.to_owned())),
        }
    }

    async fn publish_transient(&self, message: OutgoingMessage) -> Result<(), BusError> {
        validate_subject(&message.subject)?;
        let received = BusMessage {
            headers: message.wire_headers().into(),
            subject: message.subject,
            payload: message.payload,
        };
        let mut state = self.shared.lock();
        state.transient.retain(|(_, tx)| !tx.is_closed());
        for (filter, tx) in &state.transient {
            if subject_matches(filter, &received.subject) {
                // Full buffer: drop, like NATS with a slow consumer; transient means lossy.
                let _ = tx.try_send(received.clone());
            }
        }
        Ok(())
    }

    async fn subscribe(&self, filter: &str) -> Result<TransientSubscription, BusError> {
        if filter.is_empty() || filter.split('.').any(str::is_empty) {
            return Err(BusError::InvalidSubject(filter.to_owned()));
        }
        let (tx, rx) = mpsc::channel(TRANSIENT_BUFFER);
        self.shared.lock().transient.push((filter.to_owned(), tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

struct InProcessConsumer {
    shared: Arc<Shared>,
    key: (StreamKind, String),
}

#[async_trait]
impl DurableConsumer for InProcessConsumer {
    fn name(&self) -> &str {
        &self.key.1
    }

    async fn fetch(&self, max: usize, max_wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = Instant::now() + max_wait;
        loop {
            // Registered before looking, so a publish between the look and the wait wakes us.
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (taken, next_due) = self.shared.lock().take(&self.key, max.max(1))?;
            if !taken.is_empty() {
                return Ok(taken
                    .into_iter()
                    .map(|(message, delivered, seq, dseq)| {
                        let acker = InProcessAcker {
                            shared: self.shared.clone(),
                            key: self.key.clone(),
                            seq,
                            dseq,
                        };
                        Delivery::new(message, delivered, seq, dseq, Box::new(acker))
                    })
                    .collect());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_due.map_or(deadline, |d| d.min(deadline)).max(now);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn info(&self) -> Result<ConsumerInfo, BusError> {
        let state = self.shared.lock();
        state
            .consumers
            .get(&self.key)
            .map(ConsumerState::info)
            .ok_or_else(|| BusError::ConsumerNotFound(self.key.1.clone()))
    }
}

struct InProcessAcker {
    shared: Arc<Shared>,
    key: (StreamKind, String),
    seq: u64,
    dseq: u64,
}

#[async_trait]
impl Acker for InProcessAcker {
    async fn settle(&self, kind: AckKind) -> Result<(), BusError> {
        {
            let mut state = self.shared.lock();
            // A deleted consumer or an already settled message: nothing to do, as in NATS.
            let Some(consumer) = state.consumers.get_mut(&self.key) else {
                return Ok(());
            };
            consumer.settle(kind, self.seq, self.dseq);
        }
        // An ack frees a max_ack_pending slot and a nak may be due now: wake fetchers.
        self.shared.notify.notify_waiters();
        Ok(())
    }
}
