//! The same service on PostgreSQL + NATS JetStream (the machine's, or
//! `ORDERFLOW_TEST_DATABASE_URL` / `ORDERFLOW_TEST_NATS_URL`): a fresh database and subject
//! prefix per test.

mod common;

use common::*;
use orderflow_command_service::{CommandError, CommandMeta};
use orderflow_domain::merchant::{Merchant, MerchantCommand};
use orderflow_domain::{Actor, GeoPoint, MerchantId, Name, Timestamp};
use orderflow_infra::bus::{NatsBus, NatsBusConfig, StreamKind, Subjects};
use orderflow_infra::store::{CommandId, CorrelationId, PgStoreConfig, StoreError};
use orderflow_infra::testing::{nats_url, unique_name, TestDatabase};

#[tokio::test]
async fn postgres_and_nats_serve_submit_relay_and_shut_down() {
    let db = TestDatabase::create().await;
    let prefix = unique_name("ofcmd");
    let mut store = PgStoreConfig::single(db.url.clone());
    // Two cores shared with other test runs: a small store.
    store.pool_size = 4;
    store.writers_per_database = 1;
    let pfx = prefix.clone();
    let mut t = spawn_app_with(move |b| b.postgres_nats(store, nats_url()).nats_prefix(pfx)).await;
    with_menu(&mut t).await;
    let first = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    let again = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    let stored = t.total_events().await;
    // open + list + restock + submitted (the request's claim is a row, not an event).
    assert_eq!(stored, 4);

    // The relay publishes every stored event to JetStream (bounded wait: it is async).
    let bus = NatsBus::connect(
        &nats_url(),
        Subjects::new(prefix).unwrap(),
        NatsBusConfig::default(),
    )
    .await
    .unwrap();
    let mut published = 0;
    for _ in 0..100 {
        published = bus.stream_len(StreamKind::Events).await.unwrap();
        if published >= stored {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(published, stored);

    let app = t.app.clone();
    t.stop().await.unwrap();
    // The Postgres store was shut down with the app: it takes no more appends.
    let meta = CommandMeta {
        command_id: CommandId::random(),
        correlation_id: CorrelationId::random(),
        causation_id: None,
        actor: Actor::system("test"),
        at: Timestamp::from_millis(START),
    };
    let open = MerchantCommand::Open {
        name: Name::parse("Late Shop").unwrap(),
        location: GeoPoint::new(31.0, 121.0).unwrap(),
        at: Timestamp::from_millis(START),
    };
    let refused = app
        .executor()
        .execute::<Merchant>(&MerchantId::new(99).unwrap().stream_id(), &open, &meta)
        .await;
    assert!(
        matches!(refused, Err(CommandError::Store(StoreError::ShuttingDown))),
        "{refused:?}"
    );
    bus.delete_streams().await.unwrap();
}
