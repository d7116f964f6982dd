//! Order requests: submit, cancel, the payment callback, and the ops actions on an order.

use std::collections::HashMap;

use orderflow_domain::{
    Address, BuyerId, Currency, MerchantId, Money, OrderNo, PaymentTxnId, Quantity, Reason, SkuId,
};

use super::field::{FieldError, FieldResult};
use super::request_id::RequestId;
use super::values::{address, order_no, positive_money, request_id};
use crate::v1 as pb;

/// Bounds of an order's lines.
pub const MAX_LINES: usize = 50;

/// One line as the buyer asked for it; the dish's name comes from the catalogue later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    pub sku: SkuId,
    pub quantity: Quantity,
    /// The price the buyer saw, > 0.
    pub unit_price: Money,
}

/// A buyer's order: 1..=50 lines, no sku twice, every price in one currency, a total that
/// fits an i64. The order aggregate states the same rules again; they are checked here so a
/// bad request is refused before anything is numbered or reserved.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitOrder {
    pub request_id: RequestId,
    pub buyer: BuyerId,
    pub merchant: MerchantId,
    pub lines: Vec<RequestedLine>,
    pub address: Address,
}

impl TryFrom<&pb::SubmitOrderRequest> for SubmitOrder {
    type Error = FieldError;
    fn try_from(r: &pb::SubmitOrderRequest) -> Result<Self, FieldError> {
        Ok(SubmitOrder {
            request_id: request_id(&r.request_id)?,
            buyer: BuyerId::new(r.buyer_id).field("buyer_id")?,
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
            lines: lines(&r.lines)?,
            address: address(&r.delivery_address, "delivery_address")?,
        })
    }
}

fn lines(lines: &[pb::OrderLine]) -> Result<Vec<RequestedLine>, FieldError> {
    if !(1..=MAX_LINES).contains(&lines.len()) {
        return Err(FieldError::new(
            "lines",
            format_args!("must hold 1..={MAX_LINES} lines, got {}", lines.len()),
        ));
    }
    let mut first_line_of: HashMap<&str, usize> = HashMap::with_capacity(lines.len());
    let mut total: Option<Money> = None;
    let mut parsed = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let sku = SkuId::parse(line.sku_id.as_str()).field_with(|| format!("lines[{i}].sku_id"))?;
        if let Some(first) = first_line_of.insert(line.sku_id.as_str(), i) {
            return Err(FieldError::new(
                format!("lines[{i}].sku_id"),
                format_args!("sku {sku} is already on lines[{first}]"),
            ));
        }
        let quantity =
            Quantity::new(line.quantity).field_with(|| format!("lines[{i}].quantity"))?;
        let unit_price = positive_money(&line.unit_price, &format!("lines[{i}].unit_price"))?;
        total = Some(add_line(total, unit_price, quantity, i)?);
        parsed.push(RequestedLine {
            sku,
            quantity,
            unit_price,
        });
    }
    Ok(parsed)
}

/// Adds one line to the running total: same currency as line 0, and no overflow (a total the
/// order could not even write down).
fn add_line(
    total: Option<Money>,
    unit_price: Money,
    quantity: Quantity,
    i: usize,
) -> Result<Money, FieldError> {
    let overflow = || {
        FieldError::new(
            format!("lines[{i}].unit_price.minor_units"),
            "the order total overflows",
        )
    };
    let line_total = unit_price
        .checked_mul(quantity.get())
        .map_err(|_| overflow())?;
    let Some(total) = total else {
        return Ok(line_total);
    };
    if total.currency() != unit_price.currency() {
        return Err(currency_mismatch(
            total.currency(),
            unit_price.currency(),
            i,
        ));
    }
    total.checked_add(line_total).map_err(|_| overflow())
}

fn currency_mismatch(expected: Currency, got: Currency, i: usize) -> FieldError {
    FieldError::new(
        format!("lines[{i}].unit_price.currency_code"),
        format_args!("every line must be in {expected} like lines[0], got {got}"),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOrder {
    pub request_id: RequestId,
    pub order_no: OrderNo,
    /// Optional: empty when the buyer gave none; at most 200 characters.
    pub reason: Reason,
}

impl TryFrom<&pb::CancelOrderRequest> for CancelOrder {
    type Error = FieldError;
    fn try_from(r: &pb::CancelOrderRequest) -> Result<Self, FieldError> {
        Ok(CancelOrder {
            request_id: request_id(&r.request_id)?,
            order_no: order_no(&r.order_no, "order_no")?,
            reason: Reason::parse(r.reason.as_str()).field("reason")?,
        })
    }
}

/// The payment provider's callback. Whether the amount equals the order total is the order's
/// rule; here it only has to be a positive amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPayment {
    pub request_id: RequestId,
    pub order_no: OrderNo,
    pub txn: PaymentTxnId,
    pub amount: Money,
}

impl TryFrom<&pb::ConfirmPaymentRequest> for ConfirmPayment {
    type Error = FieldError;
    fn try_from(r: &pb::ConfirmPaymentRequest) -> Result<Self, FieldError> {
        Ok(ConfirmPayment {
            request_id: request_id(&r.request_id)?,
            order_no: order_no(&r.order_no, "order_no")?,
            txn: PaymentTxnId::parse(r.payment_txn_id.as_str()).field("payment_txn_id")?,
            amount: positive_money(&r.amount, "amount")?,
        })
    }
}

/// Ops compensate a late delivery. "At most the order total" is the order's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compensate {
    pub request_id: RequestId,
    pub order_no: OrderNo,
    pub amount: Money,
    /// At most 200 characters; the contract does not require one.
    pub reason: Reason,
}

impl TryFrom<&pb::CompensateRequest> for Compensate {
    type Error = FieldError;
    fn try_from(r: &pb::CompensateRequest) -> Result<Self, FieldError> {
        Ok(Compensate {
            request_id: request_id(&r.request_id)?,
            order_no: order_no(&r.order_no, "order_no")?,
            amount: positive_money(&r.amount, "amount")?,
            reason: Reason::parse(r.reason.as_str()).field("reason")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOrder {
    pub request_id: RequestId,
    pub order_no: OrderNo,
}

impl TryFrom<&pb::CloseOrderRequest> for CloseOrder {
    type Error = FieldError;
    fn try_from(r: &pb::CloseOrderRequest) -> Result<Self, FieldError> {
        Ok(CloseOrder {
            request_id: request_id(&r.request_id)?,
            order_no: order_no(&r.order_no, "order_no")?,
        })
    }
}

#[cfg(test)]
mod tests;
