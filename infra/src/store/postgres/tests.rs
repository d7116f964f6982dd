//! The conformance suite against PostgreSQL (one database, and the shards split over two),
//! and what only PostgreSQL can show: several processes on one database, transactions
//! rolled back by someone else, shutdown, corrupt rows. Each test makes its own database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderflow_domain::Shard;

use super::{PgEventStore, PgStoreConfig, ShardMap};
use crate::store::{EventStore, ExpectedVersion, Position, StoreError};
use crate::testing::store::{request, stream_in, POISON_EVENT_TYPE};
use crate::testing::TestDatabase;

/// Makes the database refuse events of the poison type, so batches really roll back.
async fn install_poison_trigger(store: &PgEventStore, shards: &[u8]) {
    for &shard in shards {
        let client = store
            .pool(Shard::new(shard).unwrap())
            .get()
            .await
            .expect("client");
        client
            .batch_execute(&format!(
                "CREATE OR REPLACE FUNCTION conformance_poison() RETURNS trigger
                 LANGUAGE plpgsql AS $$
                 BEGIN
                     IF NEW.event_type = '{POISON_EVENT_TYPE}' THEN
                         RAISE EXCEPTION 'poison event refused';
                     END IF;
                     RETURN NEW;
                 END $$;
                 CREATE OR REPLACE TRIGGER conformance_poison BEFORE INSERT ON events
                     FOR EACH ROW EXECUTE FUNCTION conformance_poison();"
            ))
            .await
            .expect("install trigger");
    }
}

/// A small store: tests run in parallel on a small machine.
fn test_config(map: ShardMap) -> PgStoreConfig {
    PgStoreConfig {
        pool_size: 6,
        writers_per_database: 2,
        fallback_poll: Duration::from_millis(500),
        ..PgStoreConfig::new(map)
    }
}

pub(crate) async fn one_database() -> Arc<dyn EventStore> {
    let db = TestDatabase::create().await;
    let store = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .expect("connect");
    install_poison_trigger(&store, &[0]).await;
    Arc::new(store)
}

pub(crate) async fn two_databases() -> Arc<dyn EventStore> {
    let a = TestDatabase::create().await;
    let b = TestDatabase::create().await;
    let map = ShardMap::parse(&format!("0-15={};16-31={}", a.url, b.url)).expect("map");
    let store = PgEventStore::connect(test_config(map))
        .await
        .expect("connect");
    install_poison_trigger(&store, &[0, 16]).await;
    Arc::new(store)
}

crate::store_conformance_suite!(conformance_one_database, one_database());
crate::store_conformance_suite!(conformance_two_databases, two_databases());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_interleave_gap_free() {
    let db = TestDatabase::create().await;
    let a = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .unwrap();
    let b = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .unwrap();
    let shard = Shard::new(4).unwrap();
    // b follows what a writes: only NOTIFY (or the poll) can tell it.
    let mut follower = b.subscribe(shard, Position::ZERO);
    let tasks = (0..8).map(|t| {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            for i in 0..25 {
                let stream = stream_in(4, &format!("p{t}n{i}"));
                store
                    .append(request(&stream, ExpectedVersion::NO_STREAM, 1 + i % 2))
                    .await
                    .expect("append");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let expected: Vec<u64> = (1..=8 * (13 + 2 * 12)).collect();
    let log = a.read_shard(shard, Position::ZERO, 10_000).await.unwrap();
    let positions: Vec<u64> = log.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, expected);
    let started = Instant::now();
    for want in &expected {
        let event = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .expect("follower stalled")
            .unwrap()
            .unwrap();
        assert_eq!(event.position.get(), *want);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Someone else locks a shard's head, inserts an event and rolls back while the store's
/// appends wait: no hole, no phantom, the subscriber sees 1..=n.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_rollback_leaves_no_hole() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .unwrap();
    let shard = Shard::new(21).unwrap();
    let s = stream_in(21, "rb");
    store
        .append(request(&s, ExpectedVersion::Exact(0), 3))
        .await
        .unwrap();
    let mut sub = store.subscribe(shard, Position::ZERO);

    let (mut other, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "SELECT position FROM shard_heads WHERE shard = 21 FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    tx.execute(
        "INSERT INTO events (shard, position, stream_id, stream_version, event_id, event_type,
             event_version, payload, command_id, command_events, correlation_id, actor_role,
             actor_subject, occurred_at)
         VALUES (21, 4, 'order-phantomx21', 1, gen_random_uuid(), 'phantom', 1, '{}', 'c', 1,
             'c', 'service', 'test', now())",
        &[],
    )
    .await
    .unwrap();
    let appends = {
        let store = store.clone();
        let s = s.clone();
        tokio::spawn(async move {
            for v in 3..8 {
                store
                    .append(request(&s, ExpectedVersion::Exact(v), 1))
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!appends.is_finished(), "appends wait for the head lock");
    tx.rollback().await.unwrap();
    appends.await.unwrap();

    let positions: Vec<u64> = store
        .read_shard(shard, Position::ZERO, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position.get())
        .collect();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>());
    for want in 1..=8 {
        let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("subscriber stalled")
            .unwrap()
            .unwrap();
        assert_eq!(event.position.get(), want);
        assert_ne!(event.event_type, "phantom");
    }
}

/// One append the database refuses (a trigger) in a batch of twenty: it fails alone, the
/// others commit at gap-free positions in submission order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_fails_alone_in_its_batch() {
    let store = one_database().await;
    let mut requests: Vec<_> = (0..20)
        .map(|i| request(&stream_in(9, &format!("b{i}")), ExpectedVersion::Any, 1))
        .collect();
    requests[7].events[0].event_type = POISON_EVENT_TYPE.to_owned();
    let results = store.append_many(requests).await;
    let mut next = 1;
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Err(StoreError::Unavailable(_)) if i == 7 => {}
            Ok(o) if i != 7 => {
                assert_eq!(o.first_position.get(), next);
                next += 1;
            }
            other => panic!("append {i}: {other:?}"),
        }
    }
    let head = store.head(Shard::new(9).unwrap()).await.unwrap();
    assert_eq!(head, Position::new(19));
}

/// An append group whose second append the database refuses, queued between plain appends
/// of its shard: the group fails whole (its first append is not written either), the
/// others commit around it, gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_group_fails_whole_and_alone_in_its_batch() {
    let store = one_database().await;
    let (a, b) = (stream_in(9, "ga"), stream_in(9, "gb"));
    let mut poisoned = request(&b, ExpectedVersion::NO_STREAM, 1);
    poisoned.events[0].event_type = POISON_EVENT_TYPE.to_owned();
    let group = vec![request(&a, ExpectedVersion::NO_STREAM, 2), poisoned];
    let before = request(&stream_in(9, "before"), ExpectedVersion::NO_STREAM, 1);
    let after = request(&stream_in(9, "after"), ExpectedVersion::NO_STREAM, 1);
    // Queued in this order before the first await of any of them.
    let (before, group, after) = tokio::join!(
        store.append(before),
        store.append_group(group),
        store.append(after)
    );
    assert!(
        matches!(group, Err(StoreError::Unavailable(_))),
        "{group:?}"
    );
    assert_eq!(before.unwrap().first_position, Position::new(1));
    assert_eq!(after.unwrap().first_position, Position::new(2));
    assert!(store.read_stream(&a, 1, 10).await.unwrap().is_empty());
    assert!(store.read_stream(&b, 1, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_is_queued_then_refuses() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .unwrap();
    let appends: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = stream_in((i % 32) as u8, &format!("sd{i}"));
                store.append(request(&s, ExpectedVersion::Any, 1)).await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    store.shutdown().await;
    let mut committed = 0;
    for append in appends {
        match append.await.unwrap() {
            Ok(_) => committed += 1,
            Err(StoreError::ShuttingDown) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let mut stored = 0;
    for shard in Shard::all() {
        stored += store.head(shard).await.unwrap().get();
    }
    assert_eq!(stored, committed, "every acknowledged append is stored");
    let late = store
        .append(request(&stream_in(1, "late"), ExpectedVersion::Any, 1))
        .await;
    assert!(matches!(late, Err(StoreError::ShuttingDown)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_row_is_corrupt() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .unwrap();
    let client = store.pool(Shard::new(2).unwrap()).get().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO events (shard, position, stream_id, stream_version, event_id,
                 event_type, event_version, payload, command_id, command_events,
                 correlation_id, actor_role, actor_subject, occurred_at)
             VALUES (2, 1, 'order-badx02', 1, gen_random_uuid(), 't', 1, '{}', 'c', 1, 'c',
                 'emperor', 'x', now());
             UPDATE shard_heads SET position = 1 WHERE shard = 2;",
        )
        .await
        .unwrap();
    let read = store
        .read_shard(Shard::new(2).unwrap(), Position::ZERO, 10)
        .await;
    assert!(
        matches!(
            read,
            Err(StoreError::Corrupt {
                shard: 2,
                position: 1,
                ..
            })
        ),
        "{read:?}"
    );
}

#[test]
fn bad_configurations_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = PgStoreConfig::single("postgres://127.0.0.1/none");
    config.writers_per_database = 0;
    assert!(matches!(
        rt.block_on(PgEventStore::connect(config)),
        Err(StoreError::Config(_))
    ));
}

/// A consumer that stops polling its subscription in the middle of a page read (a
/// `select!` that took another branch, then awaits a checkpoint save) must not keep a
/// pooled connection: with one such subscription per connection, the pool would be empty
/// and the save would wait forever (the relay deadlocked so at 256 gRPC clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_left_mid_read_holds_no_connection() {
    use futures::FutureExt;
    let db = TestDatabase::create().await;
    let config = test_config(ShardMap::single(&db.url));
    let store = PgEventStore::connect(config.clone())
        .await
        .expect("connect");
    let mut subscriptions = Vec::new();
    for shard in 0..config.pool_size as u8 {
        let mut subscription = store.subscribe(Shard::new(shard).unwrap(), Position::ZERO);
        // One poll starts the first page read; the `next()` future is then dropped.
        assert!(subscription.next().now_or_never().is_none());
        subscriptions.push(subscription);
    }
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        store.pool(Shard::new(0).unwrap()).get(),
    )
    .await;
    assert!(
        client.is_ok(),
        "every connection is held by a subscription nobody polls"
    );
    drop(subscriptions);
    store.shutdown().await;
}

/// A command loading its aggregate does not queue behind the shared pool: with every
/// connection of it taken (as by a burst of subscription page reads), a stream read still
/// goes through on the stream reads' own connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_do_not_wait_for_the_shared_pool() {
    let db = TestDatabase::create().await;
    let store = PgEventStore::connect(test_config(ShardMap::single(&db.url)))
        .await
        .expect("connect");
    let stream = stream_in(3, "order");
    store
        .append(request(&stream, ExpectedVersion::NO_STREAM, 1))
        .await
        .unwrap();
    let shared = store.pool(stream.shard());
    let mut taken = Vec::new();
    while let Ok(Ok(client)) = tokio::time::timeout(Duration::from_millis(200), shared.get()).await
    {
        taken.push(client);
    }
    assert!(!taken.is_empty());
    let read = tokio::time::timeout(Duration::from_secs(5), store.read_stream(&stream, 1, 10))
        .await
        .expect("a stream read while the shared pool is empty")
        .unwrap();
    assert_eq!(read.len(), 1);
    drop(taken);
    store.shutdown().await;
}
