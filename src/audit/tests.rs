//! The audit views of a memory store seeded through the real executor: an order submitted
//! by its buyer, created by the saga in reaction, paid by the provider; and its sku's ledger.

use std::sync::Arc;

use orderflow_command_service::{CommandMeta, Executor};
use orderflow_domain::order::{Order, OrderCommand, OrderLine};
use orderflow_domain::sku::{Sku, SkuCommand};
use orderflow_domain::{
    Actor, Address, BuyerId, MerchantId, Money, Name, OrderNo, PaymentTxnId, Quantity,
    RestockQuantity, Role, SkuId, Timestamp,
};
use orderflow_infra::store::{CommandId, CorrelationId, EventStore, MemoryEventStore};

use super::*;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn cny(minor: i64) -> Money {
    Money::parse("CNY", minor).unwrap()
}

fn meta(command_id: &str, actor: Actor, at: i64) -> CommandMeta {
    CommandMeta {
        command_id: CommandId::parse(command_id).unwrap(),
        correlation_id: CorrelationId::parse("corr-audit").unwrap(),
        causation_id: None,
        actor,
        at: t(at),
    }
}

struct Seeded {
    store: Arc<dyn EventStore>,
    order_no: OrderNo,
    sku: SkuId,
}

/// At 1s the merchant lists and restocks 10; at 2s the buyer submits 2; at 3s the saga
/// reserves them and creates the order (caused by the submission); at 60s it is paid and
/// the stock deducted.
async fn seeded() -> Seeded {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let executor = Executor::new(store.clone());
    let merchant = MerchantId::new(7).unwrap();
    let buyer = BuyerId::new(37).unwrap();
    let sku = SkuId::parse("latte").unwrap();
    let order_no = OrderNo::new(t(2_000), 1, buyer).unwrap();
    let as_merchant = Actor::new(Role::Merchant, "7");
    let saga = Actor::system("saga");

    let sku_stream = sku.stream_id();
    let list = SkuCommand::List {
        merchant,
        name: Name::parse("Latte").unwrap(),
        price: cny(1500),
        at: t(1_000),
    };
    executor
        .execute::<Sku>(
            &sku_stream,
            &list,
            &meta("list", as_merchant.clone(), 1_000),
        )
        .await
        .unwrap();
    let restock = SkuCommand::Restock {
        merchant,
        quantity: RestockQuantity::new(10).unwrap(),
        at: t(1_000),
    };
    executor
        .execute::<Sku>(&sku_stream, &restock, &meta("restock", as_merchant, 1_000))
        .await
        .unwrap();

    let submit = OrderCommand::Submit {
        order_no: order_no.clone(),
        buyer,
        merchant,
        lines: vec![OrderLine {
            sku: sku.clone(),
            name: Name::parse("Latte").unwrap(),
            quantity: Quantity::new(2).unwrap(),
            unit_price: cny(1500),
        }],
        address: Address::parse("1 Chang'an Ave", 39.9, 116.4).unwrap(),
        at: t(2_000),
        refused: None,
    };
    let order_stream = order_no.stream_id();
    executor
        .execute::<Order>(
            &order_stream,
            &submit,
            &meta("buyer-submit", Actor::new(Role::Buyer, "37"), 2_000),
        )
        .await
        .unwrap();
    let submitted = store
        .read_stream(&order_stream, 1, 1)
        .await
        .unwrap()
        .remove(0);

    let reserve = SkuCommand::Reserve {
        order_no: order_no.clone(),
        merchant,
        quantity: Quantity::new(2).unwrap(),
        unit_price: cny(1500),
        expires_at: t(1_202_000),
        at: t(3_000),
    };
    let by_saga = |id: &str, at: i64| {
        CommandMeta::caused_by(&submitted, "saga", CommandId::parse(id).unwrap(), t(at))
    };
    executor
        .execute::<Sku>(&sku_stream, &reserve, &by_saga("saga:reserve", 3_000))
        .await
        .unwrap();
    let create = OrderCommand::Create {
        payment_deadline: t(902_000),
        at: t(3_000),
    };
    executor
        .execute::<Order>(&order_stream, &create, &by_saga("saga:create", 3_000))
        .await
        .unwrap();
    assert_eq!(by_saga("x", 0).actor, saga);

    let pay = OrderCommand::ConfirmPayment {
        txn: PaymentTxnId::parse("txn-1").unwrap(),
        amount: cny(3000),
        at: t(60_000),
    };
    executor
        .execute::<Order>(
            &order_stream,
            &pay,
            &meta("pay", Actor::new(Role::Service, "payments"), 60_000),
        )
        .await
        .unwrap();
    let deduct = SkuCommand::Deduct {
        order_no: order_no.clone(),
        at: t(60_000),
    };
    executor
        .execute::<Sku>(&sku_stream, &deduct, &meta("deduct", saga, 60_000))
        .await
        .unwrap();
    Seeded {
        store,
        order_no,
        sku,
    }
}

#[tokio::test]
async fn order_timeline_says_when_who_what_and_why() {
    let s = seeded().await;
    let history = order_history(s.store.as_ref(), &s.order_no, None)
        .await
        .unwrap();

    let rows: Vec<(&str, &str, Option<&str>)> = history
        .events
        .iter()
        .map(|e| {
            (
                e.entry.what.as_str(),
                e.entry.who.as_str(),
                e.status_after.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("OrderSubmitted", "buyer:37", Some("CREATING")),
            ("OrderCreated", "service:orderflow:saga", Some("CREATED")),
            ("OrderPaid", "service:payments", Some("PAID")),
        ]
    );
    // The saga's command names the submission that caused it, by its place in the stream.
    assert_eq!(history.events[1].entry.caused_by.as_deref(), Some("#1"));
    assert_eq!(history.events[0].entry.at, "1970-01-01T00:00:02.000Z");
    assert_eq!(history.state.as_ref().unwrap().status, "PAID");

    let text = history.text();
    assert!(
        text.starts_with(&format!("order {}: 3 events\n", s.order_no)),
        "{text}"
    );
    assert!(text.contains("why: command saga:create ← #1"), "{text}");
    assert!(text.contains("total=CNY:3000"), "{text}");
    assert!(
        text.contains("payment_deadline=1970-01-01T00:15:02.000Z"),
        "{text}"
    );
    assert!(
        text.contains("state: PAID — buyer 37, merchant 7, total CNY:3000"),
        "{text}"
    );
    assert!(
        text.contains("payment deadline: 1970-01-01T00:15:02.000Z"),
        "{text}"
    );
}

#[tokio::test]
async fn as_of_shows_the_order_as_it_was_then() {
    let s = seeded().await;
    let history = order_history(s.store.as_ref(), &s.order_no, Some(t(30_000)))
        .await
        .unwrap();
    assert_eq!(history.events.len(), 2);
    assert_eq!(history.state.as_ref().unwrap().status, "CREATED");
    assert!(history
        .text()
        .contains("state as of 1970-01-01T00:00:30.000Z: CREATED"));

    let before = order_history(s.store.as_ref(), &s.order_no, Some(t(1_000)))
        .await
        .unwrap();
    assert!(before.events.is_empty() && before.state.is_none());
    assert!(before.text().contains("state: no such order as of"));
}

#[tokio::test]
async fn order_json_is_for_tools() {
    let s = seeded().await;
    let history = order_history(s.store.as_ref(), &s.order_no, None)
        .await
        .unwrap();
    let json = serde_json::to_value(&history).unwrap();
    assert_eq!(json["order_no"], s.order_no.to_string());
    assert_eq!(json["events"][1]["what"], "OrderCreated");
    assert_eq!(json["events"][1]["command_id"], "saga:create");
    assert_eq!(json["events"][1]["caused_by"], "#1");
    assert_eq!(json["events"][1]["status_after"], "CREATED");
    assert_eq!(json["events"][0]["correlation_id"], "corr-audit");
    assert_eq!(json["state"]["status"], "PAID");
    assert_eq!(json["state"]["refunded"], "CNY:0");
}

#[tokio::test]
async fn sku_ledger_carries_the_running_levels() {
    let s = seeded().await;
    let history = sku_history(s.store.as_ref(), &s.sku).await.unwrap();
    let levels: Vec<(&str, i64, i64, i64, i64)> = history
        .events
        .iter()
        .map(|e| {
            (
                e.entry.what.as_str(),
                e.added,
                e.reserved,
                e.deducted,
                e.available,
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("DishListed", 0, 0, 0, 0),
            ("StockAdded", 10, 0, 0, 10),
            ("StockReserved", 10, 2, 0, 8),
            ("StockDeducted", 10, 0, 2, 8),
        ]
    );
    let text = history.text();
    assert!(text.starts_with("sku latte: 4 events\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("StockReserved") && l.contains("       2 ")),
        "{text}"
    );
    let json = serde_json::to_value(&history).unwrap();
    assert_eq!(json["events"][2]["available"], 8);
    assert_eq!(json["events"][2]["who"], "service:orderflow:saga");
}

#[test]
fn as_of_takes_rfc_3339() {
    assert_eq!(parse_time("1970-01-01T00:00:30Z").unwrap(), t(30_000));
    assert_eq!(parse_time("1970-01-01T08:00:30+08:00").unwrap(), t(30_000));
    assert!(parse_time("yesterday").is_err());
}
