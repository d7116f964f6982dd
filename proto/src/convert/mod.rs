//! proto ↔ domain conversions: the boundary where a request becomes domain-typed or an
//! `INVALID_ARGUMENT` naming its field.
//!
//! Every `CommandService` request (and the `QueryService` requests with simple ranges) has a
//! validated struct here built with `TryFrom<&XRequest>`; after it, nothing is re-validated.
//! The first bad field, in proto field order, is reported as a [`FieldError`].
//!
//! Field paths: proto field names as the client wrote them, nested messages joined by `.`,
//! repeated fields indexed from 0 — `request_id`, `lines[3].quantity`,
//! `lines[0].unit_price.minor_units`, `delivery_address.location.lat`. A missing required
//! message is reported at its own path with the reason `is required`.
//!
//! - [`field`]: the `FieldError` of this boundary;
//! - [`request_id`]: `RequestId`, every command's idempotency key;
//! - [`values`]: value messages (points, addresses, money, timestamps, enum numbers) → domain;
//! - [`to_proto`]: domain values → proto, for replies and events;
//! - [`merchant`], [`order`], [`rider`]: the command requests;
//! - [`query`]: the query requests with ranges.

pub mod events;
pub mod field;
pub mod merchant;
pub mod order;
pub mod query;
pub mod request_id;
pub mod rider;
pub mod to_proto;
pub mod values;

pub use field::FieldError;
pub use merchant::{DelistDish, ListDish, OpenMerchant, Restock};
pub use order::{CancelOrder, CloseOrder, Compensate, ConfirmPayment, RequestedLine, SubmitOrder};
pub use query::{
    GetOrder, GetOrderAsOf, GetOrderHistory, IsCreated, ListBuyerOrders, ListSellerOrders,
    NearbyRiders, PageSize, SearchCenter, SearchOrders, WatchOrder,
};
pub use request_id::{RequestId, RequestIdError};
pub use rider::{ConfirmDelivery, GoOffline, GoOnline, GrabOrder, PickUp, ReportLocation};
