//! One ack per checkpoint: the ordered consumer's durable consumer acks with `AckPolicy::All`,
//! where one ack of stream sequence `s` settles every message at or below `s` that was
//! delivered and not acked yet.
//!
//! Every settled message used to cost an ack of its own: about 8.4 acks per flash-sale submit
//! (four consumers, each receiving every event; docs/BENCHMARKS.md, session 6). Now a
//! checkpoint save ends with one ack, of the highest message it may cover. That is the trap:
//! an ack-all also settles messages that are *not* done, and the bus never redelivers them. So
//! [`AckFloor`] keeps, per stream sequence received and not yet covered, whether it is done
//! (its checkpoint saved, or settled for good), and acks only up to just below the lowest one
//! that is not: a message nak'ed for a gap, one in hand or fetched ahead, one whose checkpoint
//! is not saved yet.
//!
//! Messages can also be pending on the bus without this process having received them: left by
//! an earlier process that crashed, or lost on the way (a pull given up, a reconnect: the
//! delivery sequence then jumps). An ack-all above them would drop them, and their shard would
//! wait for them forever. So while the bus may hold such messages no ack-all is sent, until
//! the bus's own count of pending messages is no more than the ones known here (the bus
//! redelivers them after the ack wait, and they become known). Acks are an optimisation; the
//! floor only ever errs towards acking less, which costs redeliveries, never events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::bus::{AckKind, Acker, BusError, ConsumerInfo, Delivery, DurableConsumer};

/// What is known of one stream sequence received and not covered by an ack-all yet.
enum Seq {
    /// In hand, fetched ahead, nak'ed (to come again), or held for a checkpoint not saved yet.
    NotDone,
    /// Done: an ack-all may cover it. Keeps the acker of its latest delivery, which can
    /// carry the ack-all (the bus ignores an ack-all whose delivery sequence is not above the
    /// last one's, so a later delivery of it is the better carrier).
    Done {
        delivery: u64,
        acker: Arc<dyn Acker>,
    },
}

struct Floor {
    seqs: BTreeMap<u64, Seq>,
    /// Stream and delivery sequence of the last ack-all sent (or the bus's ack floor at start).
    acked: (u64, u64),
    /// The delivery sequence expected next: a higher one means deliveries were lost.
    next_delivery: u64,
    /// The bus may hold pending messages this process has not received: no ack-all.
    unknown: bool,
    /// Bumped whenever `unknown` is set, so a check that started before cannot clear it.
    unknown_epoch: u64,
}

/// The ack floor of one ordered consumer's durable consumer (see the module doc).
pub(super) struct AckFloor {
    consumer: Arc<dyn DurableConsumer>,
    /// A std Mutex: every critical section is a few map operations, never across an await.
    floor: Mutex<Floor>,
    /// One `flush` at a time: the check of unknown messages must see no ack-all in between.
    flushing: tokio::sync::Mutex<()>,
}

impl AckFloor {
    /// Starts from the bus's view of the consumer: what it acked, what it delivered, and
    /// whether messages are pending from an earlier process.
    pub fn new(consumer: Arc<dyn DurableConsumer>, info: &ConsumerInfo) -> Arc<Self> {
        let unknown = info.ack_pending > 0;
        if unknown {
            tracing::info!(
                consumer = consumer.name(),
                pending = info.ack_pending,
                "messages pending from an earlier run: no ack until they are redelivered"
            );
        }
        Arc::new(AckFloor {
            consumer,
            floor: Mutex::new(Floor {
                seqs: BTreeMap::new(),
                acked: (info.ack_floor_stream, info.ack_floor_delivery),
                next_delivery: info.delivered + 1,
                unknown,
                unknown_epoch: 0,
            }),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Floor> {
        // Poisoned only by a panic inside a few map operations; the map is still usable.
        self.floor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes fetched deliveries into account and gives them ackers that report here.
    fn received(self: &Arc<Self>, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let mut floor = self.lock();
        for delivery in &deliveries {
            let (seq, dseq) = (delivery.stream_sequence, delivery.delivery_sequence);
            if dseq > floor.next_delivery {
                tracing::warn!(
                    consumer = self.consumer.name(),
                    expected = floor.next_delivery,
                    got = dseq,
                    "deliveries lost on the way: no ack until they are redelivered"
                );
                floor.unknown = true;
                floor.unknown_epoch += 1;
            }
            floor.next_delivery = floor.next_delivery.max(dseq + 1);
            // At or below the last ack-all: settled on the bus already, whatever happens here.
            if seq > floor.acked.0 {
                floor.seqs.entry(seq).or_insert(Seq::NotDone);
            }
        }
        drop(floor);
        deliveries
            .into_iter()
            .map(|d| {
                let (seq, dseq) = (d.stream_sequence, d.delivery_sequence);
                d.map_acker(|inner| {
                    Box::new(FloorAcker {
                        floor: Arc::clone(self),
                        seq,
                        dseq,
                        inner: Arc::from(inner),
                    })
                })
            })
            .collect()
    }

    fn done(&self, seq: u64, dseq: u64, acker: &Arc<dyn Acker>) {
        let mut floor = self.lock();
        if seq <= floor.acked.0 {
            return;
        }
        match floor.seqs.get_mut(&seq) {
            Some(Seq::Done { delivery, .. }) if *delivery >= dseq => {}
            Some(entry) => {
                *entry = Seq::Done {
                    delivery: dseq,
                    acker: Arc::clone(acker),
                };
            }
            // Not received through `received` (cannot happen), or covered already.
            None => {}
        }
    }

    /// Whether a flush has work: an ack to send (the lowest message not covered is done), or
    /// unknown messages to check for.
    pub fn wants_flush(&self) -> bool {
        let floor = self.lock();
        floor.unknown
            || floor
                .seqs
                .values()
                .next()
                .is_some_and(|s| matches!(s, Seq::Done { .. }))
    }

    /// Sends the one ack-all that covers what is done, up to the first message that is not.
    pub async fn flush(&self) {
        let _one = self.flushing.lock().await;
        self.check_unknown().await;
        let ack = {
            let mut floor = self.lock();
            floor.next_ack()
        };
        if let Some(acker) = ack {
            if let Err(e) = acker.settle(AckKind::Ack).await {
                // The messages stay pending on the bus; redelivered, they are duplicates,
                // settled again, and covered by a later ack-all.
                tracing::debug!(error = %e, "ack failed");
            }
        }
    }

    /// Clears `unknown` once the bus holds no more pending messages than the ones known here:
    /// every known one is pending on the bus (received, not covered by an ack-all sent), so
    /// equal counts mean the same messages. Counted before asking, so messages received in
    /// between only make the bus's count higher; no ack-all is sent meanwhile (`flushing`).
    async fn check_unknown(&self) {
        let (known, epoch) = {
            let floor = self.lock();
            if !floor.unknown {
                return;
            }
            (floor.seqs.len() as u64, floor.unknown_epoch)
        };
        let info = match self.consumer.info().await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "consumer info failed");
                return;
            }
        };
        if info.ack_pending <= known {
            let mut floor = self.lock();
            if floor.unknown_epoch == epoch {
                floor.unknown = false;
                tracing::info!(
                    consumer = self.consumer.name(),
                    "every pending message known; acking again"
                );
            }
        }
    }
}

impl Floor {
    /// The acker to send, covering the done messages below the first one not done; forgets
    /// what it covers.
    fn next_ack(&mut self) -> Option<Arc<dyn Acker>> {
        if self.unknown {
            return None;
        }
        let mut best: Option<(u64, u64, &Arc<dyn Acker>)> = None;
        for (&seq, state) in &self.seqs {
            let Seq::Done { delivery, acker } = state else {
                break;
            };
            // The bus ignores an ack-all whose delivery sequence is not above the last one's
            // (a message delivered again after later ones were): cover less, not nothing.
            if *delivery > self.acked.1 {
                best = Some((seq, *delivery, acker));
            }
        }
        let (seq, delivery, acker) = best?;
        let acker = Arc::clone(acker);
        self.seqs = self.seqs.split_off(&(seq + 1));
        self.acked = (seq, delivery);
        Some(acker)
    }
}

/// The acker an ordered consumer's deliveries carry: an ack only marks the message done here
/// (the ack-all goes out with the next checkpoint); naks and progress go to the bus.
struct FloorAcker {
    floor: Arc<AckFloor>,
    seq: u64,
    dseq: u64,
    inner: Arc<dyn Acker>,
}

#[async_trait]
impl Acker for FloorAcker {
    async fn settle(&self, kind: AckKind) -> Result<(), BusError> {
        match kind {
            // Never sent as such: under ack-all a term settles everything below it too.
            AckKind::Ack | AckKind::Term => {
                self.floor.done(self.seq, self.dseq, &self.inner);
                Ok(())
            }
            AckKind::Nak(_) | AckKind::InProgress => self.inner.settle(kind).await,
        }
    }
}

/// The durable consumer as the ordered consumer sees it: every delivery goes through the floor.
pub(super) struct FloorConsumer {
    inner: Arc<dyn DurableConsumer>,
    floor: Arc<AckFloor>,
}

impl FloorConsumer {
    pub fn new(inner: Arc<dyn DurableConsumer>, floor: Arc<AckFloor>) -> Self {
        FloorConsumer { inner, floor }
    }
}

#[async_trait]
impl DurableConsumer for FloorConsumer {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn fetch(&self, max: usize, max_wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let deliveries = self.inner.fetch(max, max_wait).await?;
        Ok(self.floor.received(deliveries))
    }

    async fn info(&self) -> Result<ConsumerInfo, BusError> {
        self.inner.info().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::bus::{AckPolicy, BusMessage, MessageHeaders};

    /// Answers `info` with a settable pending count; never delivers.
    struct Fake {
        pending: AtomicU64,
    }

    #[async_trait]
    impl DurableConsumer for Fake {
        fn name(&self) -> &str {
            "fake"
        }

        async fn fetch(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, BusError> {
            Ok(Vec::new())
        }

        async fn info(&self) -> Result<ConsumerInfo, BusError> {
            Ok(info(self.pending.load(Ordering::SeqCst), 0))
        }
    }

    /// What reached the bus: stream sequence and kind.
    type Sent = Arc<Mutex<Vec<(u64, AckKind)>>>;

    /// Records every settlement sent to the bus.
    struct Recording {
        seq: u64,
        sent: Sent,
    }

    #[async_trait]
    impl Acker for Recording {
        async fn settle(&self, kind: AckKind) -> Result<(), BusError> {
            self.sent.lock().unwrap().push((self.seq, kind));
            Ok(())
        }
    }

    fn info(ack_pending: u64, delivered: u64) -> ConsumerInfo {
        ConsumerInfo {
            ack_policy: AckPolicy::All,
            ack_floor_stream: 0,
            ack_floor_delivery: 0,
            delivered,
            ack_pending,
        }
    }

    fn setup(start: ConsumerInfo) -> (Arc<Fake>, Arc<AckFloor>, Sent) {
        let fake = Arc::new(Fake {
            pending: AtomicU64::new(start.ack_pending),
        });
        let floor = AckFloor::new(fake.clone(), &start);
        (fake, floor, Arc::default())
    }

    /// Deliveries of (stream sequence, delivery sequence), through the floor.
    fn deliver(floor: &Arc<AckFloor>, sent: &Sent, seqs: &[(u64, u64)]) -> Vec<Delivery> {
        let deliveries = seqs
            .iter()
            .map(|&(seq, dseq)| {
                let message = BusMessage {
                    subject: "s".into(),
                    headers: MessageHeaders::default(),
                    payload: Default::default(),
                };
                let acker = Recording {
                    seq,
                    sent: sent.clone(),
                };
                Delivery::new(message, 1, seq, dseq, Box::new(acker))
            })
            .collect();
        floor.received(deliveries)
    }

    fn acks(sent: &Mutex<Vec<(u64, AckKind)>>) -> Vec<u64> {
        let sent = sent.lock().unwrap();
        sent.iter()
            .filter(|(_, k)| *k == AckKind::Ack)
            .map(|(s, _)| *s)
            .collect()
    }

    #[tokio::test]
    async fn one_ack_up_to_the_first_message_not_done() {
        let (_, floor, sent) = setup(info(0, 0));
        let d = deliver(&floor, &sent, &[(1, 1), (2, 2), (3, 3), (4, 4)]);
        for i in [0, 1, 3] {
            d[i].ack().await.unwrap();
        }
        d[2].nak(None).await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), [2], "3 was nak'ed: nothing at or above it");
        // 3 comes again (a later delivery) and is done: one ack covers 3 and 4.
        let again = deliver(&floor, &sent, &[(3, 5)]);
        again[0].ack().await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), [2, 4]);
    }

    #[tokio::test]
    async fn the_carrier_is_a_delivery_newer_than_the_last_ack() {
        let (_, floor, sent) = setup(info(0, 0));
        let d = deliver(&floor, &sent, &[(1, 1), (2, 2), (3, 3)]);
        d[0].nak(None).await.unwrap();
        let again = deliver(&floor, &sent, &[(1, 4)]);
        again[0].ack().await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), [1]);
        // 2 and 3 were delivered before 1's last delivery: the bus would ignore their ack-all.
        d[1].ack().await.unwrap();
        d[2].ack().await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), [1], "nothing the bus would take");
        // A newer delivery carries the ack-all over all of them.
        let later = deliver(&floor, &sent, &[(4, 5)]);
        later[0].ack().await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), [1, 4]);
    }

    #[tokio::test]
    async fn a_lost_delivery_stops_acks_until_the_bus_pends_nothing_unknown() {
        let (fake, floor, sent) = setup(info(0, 0));
        // Delivery 2 never arrived (a pull given up): its message is pending on the bus.
        let d = deliver(&floor, &sent, &[(1, 1), (3, 3)]);
        fake.pending.store(3, Ordering::SeqCst);
        for x in &d {
            x.ack().await.unwrap();
        }
        floor.flush().await;
        assert_eq!(acks(&sent), Vec::<u64>::new(), "2 may be below: no ack-all");
        // Redelivered after the ack wait; now every pending message is known.
        let again = deliver(&floor, &sent, &[(2, 4)]);
        again[0].ack().await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), [3]);
    }

    #[tokio::test]
    async fn messages_pending_from_an_earlier_run_stop_acks_until_they_return() {
        let (fake, floor, sent) = setup(info(2, 2));
        let d = deliver(&floor, &sent, &[(3, 3)]);
        fake.pending.store(3, Ordering::SeqCst);
        d[0].ack().await.unwrap();
        floor.flush().await;
        assert_eq!(acks(&sent), Vec::<u64>::new());
        let again = deliver(&floor, &sent, &[(1, 4), (2, 5)]);
        for x in &again {
            x.ack().await.unwrap();
        }
        floor.flush().await;
        assert_eq!(acks(&sent), [3]);
    }
}
