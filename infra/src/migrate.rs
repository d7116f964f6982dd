//! Versioned schema migrations, run at start-up and by `orderflow migrate`.
//!
//! Each migration is a SQL file embedded in the binary, applied once, in order, inside a
//! transaction, and recorded in `schema_migrations`. A session-level advisory lock makes
//! concurrent start-ups of several processes take turns instead of racing.

use deadpool_postgres::Pool;
use tokio_postgres::Client;

/// One migration: a version (strictly increasing), a name, and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration of the event store database, in order. Never edit an applied one: add a
/// new file instead.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "event_store",
        sql: include_str!("../migrations/0001_event_store.sql"),
    },
    Migration {
        version: 2,
        name: "checkpoints",
        sql: include_str!("../migrations/0002_checkpoints.sql"),
    },
    Migration {
        version: 3,
        name: "deadlines",
        sql: include_str!("../migrations/0003_deadlines.sql"),
    },
    Migration {
        version: 4,
        name: "order_views",
        sql: include_str!("../migrations/0004_order_views.sql"),
    },
    Migration {
        version: 5,
        name: "catalog_views",
        sql: include_str!("../migrations/0005_catalog_views.sql"),
    },
    Migration {
        version: 6,
        name: "merchant_hourly_shards",
        sql: include_str!("../migrations/0006_merchant_hourly_shards.sql"),
    },
    Migration {
        version: 7,
        name: "stream_claims",
        sql: include_str!("../migrations/0007_stream_claims.sql"),
    },
    Migration {
        version: 8,
        name: "order_docs_json",
        sql: include_str!("../migrations/0008_order_docs_json.sql"),
    },
];

/// Key of the advisory lock that serialises migrations ("orderflw" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6f72_6465_7266_6c77;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("database has migration {0}, newer than this binary knows; refusing to run")]
    TooNew(i32),
}

/// Applies every migration not yet applied; returns the versions applied now.
pub async fn run(pool: &Pool, migrations: &[Migration]) -> Result<Vec<i32>, MigrateError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| MigrateError::Unavailable(e.to_string()))?;
    run_on(&mut client, migrations).await
}

/// As [`run`], on one client.
pub async fn run_on(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Vec<i32>, MigrateError> {
    let unavailable = |e: tokio_postgres::Error| MigrateError::Unavailable(e.to_string());
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(unavailable)?;
    let result = apply_pending(client, migrations).await;
    // Unlock even on failure; if this fails too the lock dies with the session anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    result
}

async fn apply_pending(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Vec<i32>, MigrateError> {
    let unavailable = |e: tokio_postgres::Error| MigrateError::Unavailable(e.to_string());
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(unavailable)?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(unavailable)?
        .get(0);
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if current > known {
        return Err(MigrateError::TooNew(current));
    }

    let mut applied = Vec::new();
    for m in migrations.iter().filter(|m| m.version > current) {
        let failed = |source| MigrateError::Failed {
            version: m.version,
            name: m.name,
            source,
        };
        let tx = client.transaction().await.map_err(unavailable)?;
        tx.batch_execute(m.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied.push(m.version);
    }
    Ok(applied)
}

/// Applies [`MIGRATIONS`] to the database at `url` over one short-lived connection: what
/// `orderflow migrate` does for each database of the shard map.
pub async fn run_url(url: &str) -> Result<Vec<i32>, MigrateError> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| MigrateError::Unavailable(e.to_string()))?;
    let connection = tokio::spawn(connection);
    let result = run_on(&mut client, MIGRATIONS).await;
    drop(client);
    let _ = connection.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    /// Migration 7 carries the claim events of earlier versions into `stream_claims`: a
    /// request accepted before the upgrade still finds its order number after it.
    #[tokio::test]
    async fn claim_events_of_earlier_versions_become_claims() {
        let db = TestDatabase::create().await;
        let pool = db.pool(2);
        let before_claims = MIGRATIONS
            .iter()
            .position(|m| m.name == "stream_claims")
            .expect("the claims migration");
        run(&pool, &MIGRATIONS[..before_claims]).await.unwrap();
        let client = pool.get().await.unwrap();
        // One claim per earlier format (the two-step submit's and the one-commit submit's),
        // and an event of another type that must not become a claim.
        client
            .batch_execute(
                "INSERT INTO events (shard, position, stream_id, stream_version, event_id,
                    event_type, event_version, payload, command_id, command_events,
                    correlation_id, actor_role, actor_subject, occurred_at)
                 VALUES
                 (5, 1, 'request-aa', 1, gen_random_uuid(), 'SubmitOrderClaimed', 1,
                  '{\"order_no\": \"2026112200000000105\", \"at\": 1}', 'buyer:5:SubmitOrder:r1',
                  1, 'c1', 'buyer', '5', now()),
                 (7, 1, 'order_claim-bb.07', 1, gen_random_uuid(), 'SubmitOrderClaimed', 1,
                  '{\"order_no\": \"2026112200000000207\", \"at\": 1}', 'buyer:7:SubmitOrder:r2',
                  1, 'c2', 'buyer', '7', now()),
                 (7, 2, 'order-2026112200000000207', 1, gen_random_uuid(), 'OrderSubmitted', 1,
                  '{\"order_no\": \"2026112200000000307\"}', 'buyer:7:SubmitOrder:r2',
                  1, 'c2', 'buyer', '7', now())",
            )
            .await
            .unwrap();
        let rest: Vec<i32> = MIGRATIONS[before_claims..]
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(run(&pool, MIGRATIONS).await.unwrap(), rest);
        let rows = client
            .query(
                "SELECT shard, claim_key, stream_id FROM stream_claims ORDER BY shard",
                &[],
            )
            .await
            .unwrap();
        let claims: Vec<(i16, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            claims,
            vec![
                (
                    5,
                    "buyer:5:SubmitOrder:r1".to_owned(),
                    "order-2026112200000000105".to_owned()
                ),
                (
                    7,
                    "buyer:7:SubmitOrder:r2".to_owned(),
                    "order-2026112200000000207".to_owned()
                ),
            ]
        );
    }

    /// Migration 8 turns the order views' `jsonb` documents into `json`: every row keeps its
    /// document's value, and the column takes what the projections now send.
    #[tokio::test]
    async fn order_documents_become_json_with_their_values() {
        let db = TestDatabase::create().await;
        let pool = db.pool(2);
        let before_json = MIGRATIONS
            .iter()
            .position(|m| m.name == "order_docs_json")
            .expect("the json migration");
        run(&pool, &MIGRATIONS[..before_json]).await.unwrap();
        let client = pool.get().await.unwrap();
        let doc = r#"{"order_no": "2026112200000000103", "lines": [{"sku": "a", "quantity": 2}], "rider": null}"#;
        client
            .execute(
                "INSERT INTO order_detail (order_no, buyer_id, merchant_id, status, created_ms,
                    updated_ms, version, doc, search)
                 VALUES ('2026112200000000103', 3, 9, 'CREATED', 1, 2, 2, $1::text::jsonb, '')",
                &[&doc],
            )
            .await
            .unwrap();
        for table in ["buyer_order", "seller_order"] {
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (part, owner_id, order_no, status, created_ms,
                            version, doc)
                         VALUES (3, 3, '2026112200000000103', 'CREATED', 1, 2, $1::text::jsonb)"
                    ),
                    &[&doc],
                )
                .await
                .unwrap();
        }
        let rest: Vec<i32> = MIGRATIONS[before_json..]
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(run(&pool, MIGRATIONS).await.unwrap(), rest);
        for table in [
            "order_detail",
            "buyer_order",
            "buyer_order_03",
            "seller_order_03",
        ] {
            let row = client
                .query_one(
                    &format!(
                        "SELECT pg_typeof(doc)::text, doc::jsonb = $1::text::jsonb FROM {table}"
                    ),
                    &[&doc],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), "json", "{table}");
            assert!(row.get::<_, bool>(1), "{table}");
        }
        // What the projections' upserts send: text, no jsonb version byte.
        let value: serde_json::Value = serde_json::from_str(doc).unwrap();
        client
            .execute(
                "UPDATE buyer_order SET doc = d FROM unnest($1::json[]) AS d",
                &[&vec![&value]],
            )
            .await
            .unwrap();
        let back: tokio_postgres::types::Json<serde_json::Value> = client
            .query_one("SELECT doc FROM buyer_order", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(back.0, value);
    }
}
