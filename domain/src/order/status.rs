//! The order's status machine, as a table the rest of the system can read.
//!
//! `decide` does not consult this table: it states each rule on its own, and the tests check
//! that every status change it ever makes is one of these edges. Projections and docs use it
//! to draw the machine.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Submitted; stock is being reserved.
    Creating,
    /// Stock reserved; awaiting payment.
    Created,
    /// Terminal: could not be created.
    Failed,
    /// Paid; awaiting a rider (also after an offer round expired).
    Paid,
    /// Terminal: cancelled by the buyer or the payment deadline.
    Cancelled,
    /// Offered to nearby riders.
    Notified,
    /// Grabbed by a rider.
    Delivering,
    /// The delivery deadline passed before delivery.
    TimedOut,
    /// Delivered.
    Received,
    /// A late delivery was compensated.
    Compensated,
    /// Terminal.
    Closed,
}

use OrderStatus::*;

impl OrderStatus {
    pub const ALL: [OrderStatus; 11] = [
        Creating,
        Created,
        Failed,
        Paid,
        Cancelled,
        Notified,
        Delivering,
        TimedOut,
        Received,
        Compensated,
        Closed,
    ];

    /// The statuses this one may move to; empty for the terminal ones.
    pub fn next(self) -> &'static [OrderStatus] {
        match self {
            Creating => &[Created, Failed],
            Created => &[Paid, Cancelled],
            Paid => &[Notified],
            Notified => &[Paid, Delivering],
            Delivering => &[TimedOut, Received],
            TimedOut => &[Received],
            Received => &[Compensated, Closed],
            Compensated => &[Closed],
            Failed | Cancelled | Closed => &[],
        }
    }

    pub fn can_move_to(self, to: OrderStatus) -> bool {
        self.next().contains(&to)
    }

    pub fn is_terminal(self) -> bool {
        self.next().is_empty()
    }

    /// The contract's name without its `ORDER_STATUS_` prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Creating => "CREATING",
            Created => "CREATED",
            Failed => "FAILED",
            Paid => "PAID",
            Cancelled => "CANCELLED",
            Notified => "NOTIFIED",
            Delivering => "DELIVERING",
            TimedOut => "TIMED_OUT",
            Received => "RECEIVED",
            Compensated => "COMPENSATED",
            Closed => "CLOSED",
        }
    }

    /// The number of the value in `orderflow.v1.OrderStatus`.
    pub fn proto_number(self) -> i32 {
        match self {
            Creating => 1,
            Created => 2,
            Failed => 3,
            Paid => 4,
            Cancelled => 5,
            Notified => 6,
            Delivering => 7,
            TimedOut => 8,
            Received => 9,
            Compensated => 10,
            Closed => 11,
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_are_failed_cancelled_and_closed() {
        let terminal: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Failed, Cancelled, Closed]);
    }

    #[test]
    fn proto_numbers_follow_the_contract() {
        let numbers: Vec<_> = OrderStatus::ALL.map(OrderStatus::proto_number).into();
        assert_eq!(numbers, (1..=11).collect::<Vec<_>>());
        assert_eq!(
            serde_json::to_value(TimedOut).unwrap(),
            serde_json::json!("TIMED_OUT")
        );
    }
}
