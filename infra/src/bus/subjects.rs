//! Every subject and stream name orderflow uses on NATS, built in one place from the
//! deployment prefix (`--nats-prefix`, default `orderflow`), so no other module formats one.

use orderflow_domain::Shard;

use super::BusError;

/// The default prefix (`--nats-prefix`).
pub const DEFAULT_PREFIX: &str = "orderflow";
/// Longest prefix accepted: stream names are derived from it and NATS caps names at 255 bytes,
/// but short prefixes keep subjects readable in tools.
pub const MAX_PREFIX_LEN: usize = 64;
/// Longest consumer name accepted (a durable name and a subject token).
pub const MAX_CONSUMER_NAME_LEN: usize = 64;

/// Which JetStream stream a durable subject belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `{prefix}.events.>`: every committed event, published by the relay.
    Events,
    /// `{prefix}.views.>`: read-model row changes published by projectors.
    Views,
    /// `{prefix}.dlq.>`: messages consumers gave up on, with the error.
    DeadLetters,
    /// `{prefix}.payments.>`: work handed to the payment provider (refunds), durable so the
    /// provider's adapter can consume it at its own pace.
    Payments,
    /// `{prefix}.alerts.>`: conditions an operator must look at (an order nobody would
    /// deliver), durable so an alerting bridge that was down still sees them.
    Alerts,
}

impl StreamKind {
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Events,
        StreamKind::Views,
        StreamKind::DeadLetters,
        StreamKind::Payments,
        StreamKind::Alerts,
    ];

    fn token(self) -> &'static str {
        match self {
            StreamKind::Events => "events",
            StreamKind::Views => "views",
            StreamKind::DeadLetters => "dlq",
            StreamKind::Payments => "payments",
            StreamKind::Alerts => "alerts",
        }
    }
}

/// Subject and stream names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Validates the prefix: 1..=64 of `[a-z0-9_-]`. Stricter than the NATS token rules
    /// (no whitespace, `.`, `*`, `>`) on purpose: stream names are the prefix upper-cased,
    /// so `Orderflow` and `orderflow` would share streams while using different subjects.
    pub fn new(prefix: impl Into<String>) -> Result<Self, BusError> {
        let prefix = prefix.into();
        let ok = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Subjects { prefix })
        } else {
            Err(BusError::InvalidPrefix(prefix))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}.events.{shard:02}.{category}.{type}`. Characters a subject token may not hold
    /// (`.`, `*`, `>`, whitespace) become `_`; the exact type travels in a header and the body.
    pub fn events(&self, shard: Shard, category: &str, event_type: &str) -> String {
        format!(
            "{}.events.{shard}.{}.{}",
            self.prefix,
            token(category),
            token(event_type)
        )
    }

    /// Every event subject: `{prefix}.events.>`.
    pub fn events_all(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// Every event of one shard: `{prefix}.events.{shard:02}.>`.
    pub fn events_shard(&self, shard: Shard) -> String {
        format!("{}.events.{shard}.>", self.prefix)
    }

    /// A read model's row changes from one shard's batches: `{prefix}.views.{view}.{shard:02}`.
    pub fn view_changes(&self, view: &str, shard: Shard) -> String {
        format!("{}.views.{}.{shard}", self.prefix, token(view))
    }

    /// Every change of one view, from every shard: `{prefix}.views.{view}.*`.
    pub fn view_changes_all(&self, view: &str) -> String {
        format!("{}.views.{}.*", self.prefix, token(view))
    }

    /// Every change of every view: `{prefix}.views.>`.
    pub fn views_all(&self) -> String {
        format!("{}.views.>", self.prefix)
    }

    /// Offers for one rider (core NATS, not stored): `{prefix}.riders.{rider_id}.offers`.
    pub fn rider_offers(&self, rider_id: u64) -> String {
        format!("{}.riders.{rider_id}.offers", self.prefix)
    }

    /// A refund the payment provider must carry out: `{prefix}.payments.refunds.{order_no}`.
    pub fn payment_refund(&self, order_no: &str) -> String {
        format!("{}.payments.refunds.{}", self.prefix, token(order_no))
    }

    /// Every refund: `{prefix}.payments.refunds.>`.
    pub fn payment_refunds_all(&self) -> String {
        format!("{}.payments.refunds.>", self.prefix)
    }

    /// An order offered `ORDERFLOW_OFFER_MAX_ROUNDS` times without a grab:
    /// `{prefix}.alerts.offers-exhausted.{order_no}`.
    pub fn offers_exhausted_alert(&self, order_no: &str) -> String {
        format!(
            "{}.alerts.offers-exhausted.{}",
            self.prefix,
            token(order_no)
        )
    }

    /// Every alert: `{prefix}.alerts.>`.
    pub fn alerts_all(&self) -> String {
        format!("{}.alerts.>", self.prefix)
    }

    /// Where a consumer's dead letters go: `{prefix}.dlq.{consumer}`.
    pub fn dead_letter(&self, consumer: &str) -> String {
        format!("{}.dlq.{}", self.prefix, token(consumer))
    }

    /// The subjects a stream captures: `{prefix}.{events|views|dlq|payments|alerts}.>`.
    pub fn stream_subjects(&self, kind: StreamKind) -> String {
        format!("{}.{}.>", self.prefix, kind.token())
    }

    /// The JetStream stream name: `{PREFIX}_EVENTS`, `{PREFIX}_VIEWS`, `{PREFIX}_DLQ`.
    pub fn stream_name(&self, kind: StreamKind) -> String {
        let upper = self.prefix.to_ascii_uppercase().replace('-', "_");
        format!("{upper}_{}", kind.token().to_ascii_uppercase())
    }

    /// The stream a (possibly wildcard) subject falls in, if any.
    pub fn stream_of(&self, subject: &str) -> Option<StreamKind> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        let first = rest.split('.').next()?;
        StreamKind::ALL
            .into_iter()
            .find(|k| k.token() == first && rest.len() > first.len())
    }
}

/// Checks a durable consumer name: 1..=64 of `[A-Za-z0-9_-]` (a NATS durable name and a
/// subject token at once, since dead letters go to `{prefix}.dlq.{consumer}`).
pub fn validate_consumer_name(name: &str) -> Result<(), BusError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CONSUMER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidConsumerName(name.to_owned()))
    }
}

/// Checks a subject to publish on: non-empty tokens, no wildcards, no whitespace.
pub fn validate_subject(subject: &str) -> Result<(), BusError> {
    let ok = !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty()
                && !t
                    .bytes()
                    .any(|b| b == b'*' || b == b'>' || b.is_ascii_whitespace())
        });
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidSubject(subject.to_owned()))
    }
}

/// Whether `subject` matches a NATS filter (`*` = one token, `>` = one or more trailing tokens).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(ft), Some(st)) if ft == st => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Makes any text a valid subject token.
fn token(s: &str) -> String {
    if s.is_empty() {
        return "_".to_owned();
    }
    s.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_operational_contract() {
        let s = Subjects::new("orderflow").unwrap();
        let shard = Shard::new(7).unwrap();
        assert_eq!(
            s.events(shard, "order", "OrderSubmitted"),
            "orderflow.events.07.order.OrderSubmitted"
        );
        assert_eq!(s.events_shard(shard), "orderflow.events.07.>");
        assert_eq!(s.events_all(), "orderflow.events.>");
        assert_eq!(
            s.view_changes("buyer_order", shard),
            "orderflow.views.buyer_order.07"
        );
        assert_eq!(
            s.view_changes_all("buyer_order"),
            "orderflow.views.buyer_order.*"
        );
        assert_eq!(s.rider_offers(9), "orderflow.riders.9.offers");
        assert_eq!(s.dead_letter("projector"), "orderflow.dlq.projector");
        assert_eq!(s.stream_name(StreamKind::Events), "ORDERFLOW_EVENTS");
        assert_eq!(
            s.stream_of("orderflow.events.07.>"),
            Some(StreamKind::Events)
        );
        assert_eq!(
            s.stream_of("orderflow.dlq.x"),
            Some(StreamKind::DeadLetters)
        );
        assert_eq!(s.stream_of("orderflow.riders.9.offers"), None);
        assert_eq!(
            s.payment_refund("2026112200000000117"),
            "orderflow.payments.refunds.2026112200000000117"
        );
        assert_eq!(
            s.stream_of(&s.payment_refund("1")),
            Some(StreamKind::Payments)
        );
        assert_eq!(s.stream_name(StreamKind::Payments), "ORDERFLOW_PAYMENTS");
        assert_eq!(s.stream_of("orderflowx.events.>"), None);
    }

    #[test]
    fn odd_event_types_become_valid_tokens() {
        let s = Subjects::new("of").unwrap();
        let shard = Shard::new(0).unwrap();
        assert_eq!(s.events(shard, "sku", "a.b c>"), "of.events.00.sku.a_b_c_");
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for p in ["", "a.b", "a b", "Orderflow", "a*", ">", &"x".repeat(65)] {
            assert!(Subjects::new(p).is_err(), "{p:?}");
        }
        assert!(Subjects::new("bus_0123abcd-x").is_ok());
    }

    #[test]
    fn filters_match_like_nats() {
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.bc"));
    }
}
