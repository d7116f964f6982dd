//! A fresh PostgreSQL database per bench run (`orderflow::scratch`), dropped at the end: the
//! figures never depend on what an earlier run left behind, and nothing is polluted.

use anyhow::Context;
use orderflow::scratch::ScratchDatabase;
use orderflow_infra::store::{PgEventStore, PgStoreConfig, ShardMap};

/// The run's database on the server of `server_url`.
pub async fn create(server_url: &str) -> anyhow::Result<ScratchDatabase> {
    Ok(ScratchDatabase::create(server_url, "bench").await?)
}

/// The event store under test, on the run's database, with its default configuration.
pub async fn event_store(
    db: &ScratchDatabase,
    writers: Option<usize>,
) -> anyhow::Result<PgEventStore> {
    let mut config = PgStoreConfig::new(ShardMap::single(&db.url));
    if let Some(writers) = writers {
        config.writers_per_database = writers;
        config.pool_size = config.pool_size.max(writers + 2);
    }
    PgEventStore::connect(config)
        .await
        .context("connecting the event store")
}
