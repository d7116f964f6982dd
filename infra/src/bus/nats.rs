//! [`NatsBus`]: the bus port on NATS JetStream (nats-server 2.9 features only: streams,
//! durable pull consumers with one filter subject, `Nats-Msg-Id` dedup).

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream, ErrorCode};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};

use super::{
    validate_consumer_name, validate_subject, AckKind, AckPolicy, Acker, BusError, BusMessage,
    ConsumerConfig, ConsumerInfo, Delivery, DurableConsumer, EventBus, Headers, MessageHeaders,
    OutgoingMessage, PendingAck, PublishAck, StreamKind, Subjects, TransientSubscription,
    MSG_ID_HEADER,
};

/// How the JetStream streams are created.
#[derive(Debug, Clone)]
pub struct NatsBusConfig {
    /// A repeated `Nats-Msg-Id` within this window is stored once. It must cover the longest
    /// relay outage whose re-sends you want absorbed by the bus rather than by consumers.
    pub dedup_window: Duration,
    /// Replicas of each stream (1 on a single server; 3 in a cluster).
    pub replicas: usize,
    /// How long a request to the server (publish ack, consumer create) may take.
    pub request_timeout: Duration,
    /// Age after which dead letters are discarded (`None`: kept until an operator purges).
    pub dead_letter_max_age: Option<Duration>,
}

impl Default for NatsBusConfig {
    fn default() -> Self {
        NatsBusConfig {
            dedup_window: Duration::from_secs(120),
            replicas: 1,
            request_timeout: Duration::from_secs(5),
            dead_letter_max_age: None,
        }
    }
}

/// The NATS JetStream bus. Cheap to clone.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
}

impl NatsBus {
    /// Connects and makes sure the streams exist (`{PREFIX}_EVENTS`, `{PREFIX}_VIEWS`,
    /// `{PREFIX}_DLQ`, `{PREFIX}_PAYMENTS`, file storage, limits retention).
    pub async fn connect(
        url: &str,
        subjects: Subjects,
        config: NatsBusConfig,
    ) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("orderflow:{}", subjects.prefix()))
            .connect(url)
            .await
            .map_err(|e| BusError::unavailable("connect", e))?;
        Self::from_client(client, subjects, config).await
    }

    /// As [`NatsBus::connect`], on an existing connection.
    pub async fn from_client(
        client: async_nats::Client,
        subjects: Subjects,
        config: NatsBusConfig,
    ) -> Result<Self, BusError> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);
        for kind in StreamKind::ALL {
            let max_age = match kind {
                StreamKind::DeadLetters => config.dead_letter_max_age.unwrap_or_default(),
                // The event store is the source of truth, but consumers created later start
                // from the beginning, so events are kept; size limits are an operator's call.
                // Refunds are money owed: kept until an operator decides otherwise.
                // Alerts are few and an operator's to clear.
                StreamKind::Events
                | StreamKind::Views
                | StreamKind::Payments
                | StreamKind::Alerts => Duration::ZERO,
            };
            js.get_or_create_stream(stream::Config {
                name: subjects.stream_name(kind),
                subjects: vec![subjects.stream_subjects(kind)],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                duplicate_window: config.dedup_window,
                num_replicas: config.replicas,
                max_age,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::setup("create stream", e))?;
        }
        Ok(NatsBus {
            client,
            js,
            subjects,
        })
    }

    /// The underlying connection (for health checks).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Deletes this prefix's streams: for tests, and for tearing down a deployment.
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        for kind in StreamKind::ALL {
            match self.js.delete_stream(self.subjects.stream_name(kind)).await {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        jetstream::context::GetStreamErrorKind::JetStream(js)
                            if js.error_code() == ErrorCode::STREAM_NOT_FOUND
                    ) => {}
                Err(e) => return Err(BusError::setup("delete stream", e)),
            }
        }
        Ok(())
    }

    /// How many messages a stream holds.
    pub async fn stream_len(&self, kind: StreamKind) -> Result<u64, BusError> {
        let mut s = self
            .js
            .get_stream(self.subjects.stream_name(kind))
            .await
            .map_err(|e| BusError::unavailable("stream info", e))?;
        let info = s
            .info()
            .await
            .map_err(|e| BusError::unavailable("stream info", e))?;
        Ok(info.state.messages)
    }

    async fn stream(&self, subject: &str) -> Result<(StreamKind, stream::Stream), BusError> {
        let kind = self
            .subjects
            .stream_of(subject)
            .ok_or_else(|| BusError::NoStream(subject.to_owned()))?;
        let stream = self
            .js
            .get_stream(self.subjects.stream_name(kind))
            .await
            .map_err(|e| BusError::unavailable("get stream", e))?;
        Ok((kind, stream))
    }
}

/// Moves the headers into the client's map: the names and values become its own without a
/// copy (this runs for every relayed event).
fn into_nats_headers(headers: Headers) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in headers {
        map.insert(k, v);
    }
    map
}

#[async_trait]
impl EventBus for NatsBus {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn start_publish(&self, message: OutgoingMessage) -> Result<PendingAck, BusError> {
        validate_subject(&message.subject)?;
        // `wire_headers` without its copy of the map: this runs for every relayed event.
        let mut headers = into_nats_headers(message.headers);
        if let Some(id) = message.msg_id {
            headers.insert(MSG_ID_HEADER, id);
        }
        let publish = jetstream::context::Publish::build()
            .payload(message.payload)
            .headers(headers);
        // `send_publish` returns once the request is queued on the connection, in call order;
        // the returned future waits for the stream's ack.
        let ack = self
            .js
            .send_publish(message.subject, publish)
            .await
            .map_err(map_publish_error)?;
        Ok(async move {
            let ack = ack.await.map_err(map_publish_error)?;
            Ok(PublishAck {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
        }
        .boxed())
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn DurableConsumer>, BusError> {
        validate_consumer_name(&config.name)?;
        let (_, stream) = self.stream(&config.filter_subject).await?;
        let deliver_policy = match config.start_sequence {
            None => jetstream::consumer::DeliverPolicy::All,
            Some(start_sequence) => {
                jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
        };
        let ack_policy = match config.ack_policy {
            AckPolicy::Explicit => jetstream::consumer::AckPolicy::Explicit,
            AckPolicy::All => jetstream::consumer::AckPolicy::All,
        };
        let consumer = stream
            .get_or_create_consumer(
                &config.name,
                pull::Config {
                    durable_name: Some(config.name.clone()),
                    filter_subject: config.filter_subject.clone(),
                    ack_policy,
                    deliver_policy,
                    ack_wait: config.ack_wait,
                    max_deliver: config.max_deliver.map_or(-1, i64::from),
                    max_ack_pending: i64::from(config.max_ack_pending),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError::setup("create consumer", e))?;
        Ok(Box::new(NatsConsumer {
            name: config.name,
            consumer,
            stream,
        }))
    }

    async fn consumer_info(
        &self,
        stream: StreamKind,
        name: &str,
    ) -> Result<Option<ConsumerInfo>, BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.stream_name(stream))
            .await
            .map_err(|e| BusError::unavailable("get stream", e))?;
        match stream.consumer_info(name).await {
            Ok(info) => Ok(Some(to_info(&info))),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::ConsumerInfoErrorKind::NotFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(BusError::unavailable("consumer info", e)),
        }
    }

    async fn delete_consumer(&self, stream: StreamKind, name: &str) -> Result<(), BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.stream_name(stream))
            .await
            .map_err(|e| BusError::unavailable("get stream", e))?;
        match stream.delete_consumer(name).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::stream::ConsumerErrorKind::JetStream(js)
                        if js.error_code() == ErrorCode::CONSUMER_NOT_FOUND
                ) =>
            {
                Err(BusError::ConsumerNotFound(name.to_owned()))
            }
            Err(e) => Err(BusError::unavailable("delete consumer", e)),
        }
    }

    async fn publish_transient(&self, message: OutgoingMessage) -> Result<(), BusError> {
        validate_subject(&message.subject)?;
        let headers = into_nats_headers(message.wire_headers());
        self.client
            .publish_with_headers(message.subject, headers, message.payload)
            .await
            .map_err(|e| BusError::unavailable("publish", e))
    }

    async fn subscribe(&self, filter: &str) -> Result<TransientSubscription, BusError> {
        if filter.is_empty() || filter.split('.').any(str::is_empty) {
            return Err(BusError::InvalidSubject(filter.to_owned()));
        }
        let sub = self
            .client
            .subscribe(filter.to_owned())
            .await
            .map_err(|e| BusError::unavailable("subscribe", e))?;
        // The SUB must reach the server before the caller publishes, or the first messages
        // would go nowhere.
        self.client
            .flush()
            .await
            .map_err(|e| BusError::unavailable("subscribe", e))?;
        Ok(Box::pin(sub.map(|m| BusMessage {
            subject: m.subject.to_string(),
            headers: MessageHeaders::from_nats(m.headers),
            payload: m.payload,
        })))
    }
}

fn map_publish_error(e: jetstream::context::PublishError) -> BusError {
    use jetstream::context::PublishErrorKind;
    match e.kind() {
        PublishErrorKind::TimedOut => BusError::Timeout { op: "publish" },
        _ => BusError::unavailable("publish", e),
    }
}

struct NatsConsumer {
    name: String,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    /// For `info` (the consumer's own `info` needs `&mut`).
    stream: stream::Stream,
}

fn to_info(info: &jetstream::consumer::Info) -> ConsumerInfo {
    ConsumerInfo {
        ack_policy: match info.config.ack_policy {
            jetstream::consumer::AckPolicy::All => AckPolicy::All,
            // `None` never occurs here: orderflow creates only the other two.
            _ => AckPolicy::Explicit,
        },
        ack_floor_stream: info.ack_floor.stream_sequence,
        ack_floor_delivery: info.ack_floor.consumer_sequence,
        delivered: info.delivered.consumer_sequence,
        ack_pending: info.num_ack_pending as u64,
    }
}

impl NatsConsumer {
    /// Collects one pull request's messages; `no_wait` returns at once with what is there.
    async fn pull(
        &self,
        max: usize,
        wait: Option<Duration>,
        out: &mut Vec<Delivery>,
    ) -> Result<(), BusError> {
        let mut batch = match wait {
            None => self.consumer.fetch().max_messages(max).messages().await,
            Some(wait) => {
                self.consumer
                    .batch()
                    .max_messages(max)
                    .expires(wait)
                    .messages()
                    .await
            }
        }
        .map_err(|e| BusError::unavailable("fetch", e))?;
        // The pull ends when the server says so (no more messages, or the request expired).
        // Should that answer never come (seen once: a no-wait pull whose end never arrived, a
        // test hung on it for minutes), the pull stops anyway once it is well past its
        // deadline: what it received is delivered, and the server expires the request's
        // unfilled slots on its own.
        let give_up = tokio::time::sleep(wait.unwrap_or(Duration::ZERO) + PULL_GRACE);
        tokio::pin!(give_up);
        loop {
            let message = tokio::select! {
                message = batch.next() => message,
                _ = &mut give_up => {
                    tracing::warn!(received = out.len(), "pull did not end by its deadline; stopped");
                    return Ok(());
                }
            };
            let Some(message) = message else {
                return Ok(());
            };
            let message = message.map_err(|e| BusError::unavailable("fetch", e))?;
            out.push(to_delivery(message)?);
        }
    }
}

/// How long past its own deadline a pull may go before it is given up (see `pull`).
const PULL_GRACE: Duration = Duration::from_secs(5);

fn to_delivery(message: jetstream::Message) -> Result<Delivery, BusError> {
    let (delivered, stream_sequence, delivery_sequence) = {
        let info = message
            .info()
            .map_err(|e| BusError::unavailable("message info", e))?;
        (
            u32::try_from(info.delivered).unwrap_or(u32::MAX),
            info.stream_sequence,
            info.consumer_sequence,
        )
    };
    let (message, acker) = message.split();
    let received = BusMessage {
        subject: message.subject.to_string(),
        // Kept as the client parsed them: most deliveries are skipped by two header values.
        headers: MessageHeaders::from_nats(message.headers),
        payload: message.payload,
    };
    Ok(Delivery::new(
        received,
        delivered,
        stream_sequence,
        delivery_sequence,
        Box::new(NatsAcker(acker)),
    ))
}

#[async_trait]
impl DurableConsumer for NatsConsumer {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, max: usize, max_wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let max = max.max(1);
        let mut out = Vec::new();
        // First what is already there, without waiting.
        self.pull(max, None, &mut out).await?;
        if out.is_empty() && !max_wait.is_zero() {
            // Then wait for one message only: a pull for more would keep its open slots on the
            // server until it expires, and messages delivered into them after we stop reading
            // would sit unacknowledged until the ack wait.
            self.pull(1, Some(max_wait), &mut out).await?;
            if !out.is_empty() && max > 1 {
                self.pull(max - 1, None, &mut out).await?;
            }
        }
        Ok(out)
    }

    async fn info(&self) -> Result<ConsumerInfo, BusError> {
        let info = self
            .stream
            .consumer_info(&self.name)
            .await
            .map_err(|e| BusError::unavailable("consumer info", e))?;
        Ok(to_info(&info))
    }
}

struct NatsAcker(jetstream::message::Acker);

#[async_trait]
impl Acker for NatsAcker {
    async fn settle(&self, kind: AckKind) -> Result<(), BusError> {
        let kind = match kind {
            AckKind::Ack => jetstream::AckKind::Ack,
            AckKind::Nak(delay) => jetstream::AckKind::Nak(delay),
            AckKind::InProgress => jetstream::AckKind::Progress,
            AckKind::Term => jetstream::AckKind::Term,
        };
        self.0
            .ack_with(kind)
            .await
            .map_err(|e| BusError::unavailable("ack", e))
    }
}
