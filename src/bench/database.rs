//! A fresh PostgreSQL database per bench run, on the server the user named, dropped at the end:
//! the figures never depend on what an earlier run left behind, and nothing is polluted.

use anyhow::Context;
use orderflow_infra::store::{PgEventStore, PgStoreConfig, ShardMap};
use tokio_postgres::NoTls;

pub struct BenchDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl BenchDatabase {
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        let name = format!(
            "orderflow_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = connect(server_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating bench database {name}"))?;
        let url = with_database(server_url, &name)?;
        Ok(BenchDatabase {
            admin_url: server_url.to_owned(),
            name,
            url,
        })
    }

    /// The event store under test, on this database, with its default configuration.
    pub async fn event_store(&self, writers: Option<usize>) -> anyhow::Result<PgEventStore> {
        let mut config = PgStoreConfig::new(ShardMap::single(&self.url));
        if let Some(writers) = writers {
            config.writers_per_database = writers;
            config.pool_size = config.pool_size.max(writers + 2);
        }
        PgEventStore::connect(config)
            .await
            .context("connecting the event store")
    }

    /// Stops the store's writers so the ceiling runs on a quiet database.
    pub async fn shutdown_store(&self, store: &PgEventStore) {
        store.shutdown().await;
    }

    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    pub async fn finish(self, keep: bool) -> anyhow::Result<()> {
        if keep {
            eprintln!("kept bench database {}", self.name);
            return Ok(());
        }
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("dropping bench database {}", self.name))?;
        Ok(())
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", crate::cli::redact(url)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "bench connection closed");
        }
    });
    Ok(client)
}

/// The same server URL pointing at another database.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .context("database url must be postgres://…")?
        + 3;
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_swaps_only_the_database() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "b").unwrap(),
            "postgres://u@h:5432/b"
        );
        assert_eq!(
            with_database("postgres://u@h", "b").unwrap(),
            "postgres://u@h/b"
        );
        assert_eq!(
            with_database("postgres://h/x?sslmode=disable", "b").unwrap(),
            "postgres://h/b?sslmode=disable"
        );
    }
}
