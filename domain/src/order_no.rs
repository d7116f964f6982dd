//! Order numbers (seed 001): unique, time-ordered, and ending with the buyer's shard.
//!
//! `yyyyMMddHHmmssSSS` (UTC, 17 digits) + a sequence (6 digits) + the shard (2 digits): 25
//! decimal digits, e.g. `2026112207171234500004217`. Every part has a fixed width, so comparing
//! two numbers as strings compares their times first; the shard at the end routes any command
//! or query on the order from its number alone; ops can read the time at a glance.
//!
//! The number is computed, never drawn: the caller hands in the time and a sequence that it
//! keeps distinct within one millisecond (one counter per process, or `node * 100_000 +
//! counter` when several processes issue numbers), and the buyer's shard makes numbers of
//! different shards distinct on their own.

use serde::{Deserialize, Serialize};

use crate::ids::BuyerId;
use crate::refusal::{Refusal, RefusalKind};
use crate::shard::Shard;
use crate::stream::StreamId;
use crate::time::{civil_from_days, days_from_civil, days_in_month, Timestamp};

/// Exclusive bound of the sequence part (6 digits).
pub const SEQUENCE_LIMIT: u32 = 1_000_000;
/// The last millisecond a 4-digit year can write: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: i64 = 253_402_300_799_999;
const LEN: usize = 25;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderNoError {
    #[error("order_no time must be in years 1970..=9999, got {0} ms")]
    TimeOutOfRange(i64),
    #[error("order_no sequence must be < {SEQUENCE_LIMIT}, got {0}")]
    SequenceOutOfRange(u32),
    #[error("order_no must be {LEN} decimal digits, got {0:?}")]
    Malformed(String),
    #[error("order_no holds an impossible date: {0:?}")]
    BadDate(String),
    #[error("order_no must end with a shard 00..=31: {0:?}")]
    BadShard(String),
}

impl Refusal for OrderNoError {
    fn kind(&self) -> RefusalKind {
        RefusalKind::InvalidArgument
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderNo(String);

impl OrderNo {
    /// The number of an order submitted by `buyer` at `at`, the `sequence`-th in that ms.
    pub fn new(at: Timestamp, sequence: u32, buyer: BuyerId) -> Result<Self, OrderNoError> {
        let ms = at.as_millis();
        if !(0..=MAX_MILLIS).contains(&ms) {
            return Err(OrderNoError::TimeOutOfRange(ms));
        }
        if sequence >= SEQUENCE_LIMIT {
            return Err(OrderNoError::SequenceOutOfRange(sequence));
        }
        let (date, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        let (y, m, d) = civil_from_days(date);
        let (hh, mm, ss, sss) = (
            rest / 3_600_000,
            rest / 60_000 % 60,
            rest / 1000 % 60,
            rest % 1000,
        );
        Ok(OrderNo(format!(
            "{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}{sss:03}{sequence:06}{shard}",
            shard = buyer.shard()
        )))
    }

    pub fn parse(s: impl Into<String>) -> Result<Self, OrderNoError> {
        let s = s.into();
        if s.len() != LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OrderNoError::Malformed(s));
        }
        let num = |from: usize, to: usize| -> i64 {
            // All digits and at most 4 of them: cannot fail nor overflow.
            s[from..to].parse().unwrap_or(0)
        };
        let (y, m, d) = (num(0, 4), num(4, 6), num(6, 8));
        let (hh, mm, ss) = (num(8, 10), num(10, 12), num(12, 14));
        let valid_date = y >= 1970
            && (1..=12).contains(&m)
            && (1..=days_in_month(y, m)).contains(&d)
            && hh < 24
            && mm < 60
            && ss < 60;
        if !valid_date {
            return Err(OrderNoError::BadDate(s));
        }
        if num(23, 25) >= i64::from(crate::SHARD_COUNT) {
            return Err(OrderNoError::BadShard(s));
        }
        Ok(OrderNo(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The buyer's shard, carried in the last two digits.
    pub fn shard(&self) -> Shard {
        Shard::try_from(self.part(23, 25)).expect("checked by parse")
    }

    /// When the order was numbered, to the millisecond.
    pub fn timestamp(&self) -> Timestamp {
        let days = days_from_civil(self.part(0, 4), self.part(4, 6), self.part(6, 8));
        let ms = days * 86_400_000
            + self.part(8, 10) * 3_600_000
            + self.part(10, 12) * 60_000
            + self.part(12, 14) * 1000
            + self.part(14, 17);
        Timestamp::from_millis(ms)
    }

    pub fn sequence(&self) -> u32 {
        // Six digits always fit.
        u32::try_from(self.part(17, 23)).unwrap_or(0)
    }

    /// `order-{order_no}`, which the store places in [`OrderNo::shard`].
    pub fn stream_id(&self) -> StreamId {
        // 25 digits ending with a valid shard: always a valid order stream.
        StreamId::of(crate::stream::ORDER_CATEGORY, &self.0).expect("order numbers are valid")
    }

    fn part(&self, from: usize, to: usize) -> i64 {
        self.0[from..to].parse().unwrap_or(0)
    }
}

impl TryFrom<String> for OrderNo {
    type Error = OrderNoError;
    fn try_from(s: String) -> Result<Self, OrderNoError> {
        OrderNo::parse(s)
    }
}

impl From<OrderNo> for String {
    fn from(n: OrderNo) -> String {
        n.0
    }
}

impl std::fmt::Display for OrderNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn buyer(id: i64) -> BuyerId {
        BuyerId::new(id).unwrap()
    }

    #[test]
    fn order_no_reads_as_utc_time_sequence_and_shard() {
        // 2026-11-22T07:17:12.345Z
        let at = Timestamp::from_millis(1_795_331_832_345);
        let no = OrderNo::new(at, 42, buyer(17 + 32 * 5)).unwrap();
        assert_eq!(no.as_str(), "2026112207171234500004217");
        assert_eq!(no.shard().index(), 17);
        assert_eq!(no.sequence(), 42);
        assert_eq!(no.timestamp(), at);
        assert_eq!(no.stream_id().as_str(), "order-2026112207171234500004217");
        assert_eq!(no.stream_id().shard(), no.shard());
    }

    #[test]
    fn order_no_refuses_what_it_cannot_write() {
        let b = buyer(1);
        assert!(matches!(
            OrderNo::new(Timestamp::from_millis(-1), 0, b),
            Err(OrderNoError::TimeOutOfRange(-1))
        ));
        assert!(OrderNo::new(Timestamp::from_millis(MAX_MILLIS), 0, b).is_ok());
        assert!(OrderNo::new(Timestamp::from_millis(MAX_MILLIS + 1), 0, b).is_err());
        assert_eq!(
            OrderNo::new(Timestamp::EPOCH, SEQUENCE_LIMIT, b)
                .unwrap_err()
                .to_string(),
            "order_no sequence must be < 1000000, got 1000000"
        );
    }

    #[test]
    fn order_no_parse_refuses_bad_numbers() {
        assert!(matches!(
            OrderNo::parse("123"),
            Err(OrderNoError::Malformed(_))
        ));
        assert!(matches!(
            OrderNo::parse("2026112207171234500004x17"),
            Err(OrderNoError::Malformed(_))
        ));
        // 2026-02-29 does not exist.
        assert!(matches!(
            OrderNo::parse("2026022907171234500004217"),
            Err(OrderNoError::BadDate(_))
        ));
        assert!(matches!(
            OrderNo::parse("2026112207171234500004232"),
            Err(OrderNoError::BadShard(_))
        ));
        assert!(OrderNo::parse("2024022923595999900000031").is_ok());
    }

    proptest! {
        #[test]
        fn order_no_round_trips_and_carries_the_buyer_shard(
            ms in 0..=MAX_MILLIS, seq in 0..SEQUENCE_LIMIT, id in 1..=i64::MAX,
        ) {
            let no = OrderNo::new(Timestamp::from_millis(ms), seq, buyer(id)).unwrap();
            prop_assert_eq!(OrderNo::parse(no.as_str()).unwrap(), no.clone());
            prop_assert_eq!(i64::from(no.shard().index()), id % 32);
            prop_assert_eq!(no.timestamp().as_millis(), ms);
            prop_assert_eq!(no.sequence(), seq);
        }

        #[test]
        fn later_order_numbers_sort_after_earlier_ones(
            a in 0..MAX_MILLIS, gap in 1..=1_000_000_000_i64,
            seq_a in 0..SEQUENCE_LIMIT, seq_b in 0..SEQUENCE_LIMIT,
            buyer_a in 1..=i64::MAX, buyer_b in 1..=i64::MAX,
        ) {
            let b = (a + gap).min(MAX_MILLIS);
            prop_assume!(b > a);
            let first = OrderNo::new(Timestamp::from_millis(a), seq_a, buyer(buyer_a)).unwrap();
            let later = OrderNo::new(Timestamp::from_millis(b), seq_b, buyer(buyer_b)).unwrap();
            prop_assert!(later.as_str() > first.as_str());
        }
    }
}
