//! The pure orderflow model: aggregates as deciders, their commands and events, value types.
//!
//! No IO, no async, no clock: time and ids come in through commands, so every decision is a
//! deterministic function of the past events and the command.
//!
//! - [`decider`]: the `Decider` trait every aggregate implements;
//! - [`event`]: `DomainEvent` (type name, version, encode, decode with upcasting);
//! - [`refusal`]: `RefusalKind` for the gRPC mapping and the contract's `FailureReason`;
//! - value types: [`ids`], [`order_no`], [`money`], [`quantity`], [`geo`], [`text`];
//! - aggregates: [`order`], [`sku`], [`rider`], [`merchant`];
//! - [`testing`]: a given/when/then harness for deciders.
#![forbid(unsafe_code)]

pub mod actor;
pub mod decider;
pub mod event;
pub mod geo;
pub mod ids;
pub mod merchant;
pub mod money;
pub mod order;
pub mod order_no;
pub mod quantity;
pub mod refusal;
pub mod rider;
pub mod shard;
pub mod sku;
pub mod stream;
pub mod testing;
pub mod text;
pub mod time;

pub use actor::{Actor, Role};
pub use decider::Decider;
pub use event::{DecodeError, DomainEvent};
pub use geo::{Address, GeoPoint};
pub use ids::{BuyerId, MerchantId, OfferId, PaymentTxnId, RiderId, SkuId};
pub use money::{Currency, Money};
pub use order_no::OrderNo;
pub use quantity::{Capacity, Quantity, RestockQuantity};
pub use refusal::{FailureReason, Refusal, RefusalKind};
pub use shard::{Shard, SHARD_COUNT};
pub use stream::StreamId;
pub use text::{AddressText, Name, Reason};
pub use time::Timestamp;
