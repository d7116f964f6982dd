//! What one `demo` or `bench` run creates on the servers the user named and removes at the
//! end: a fresh database and a fresh NATS subject prefix. One place, so the demo and every
//! bench name, keep and drop them the same way (and a run never sees what an earlier one left
//! behind).

use orderflow_infra::bus::{BusError, NatsBus, NatsBusConfig, Subjects};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("database url must be postgres://…: {0}")]
    Url(String),
    #[error("{action}: {source}")]
    Postgres {
        action: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("nats streams: {0}")]
    Bus(#[from] BusError),
}

/// A database created for one run on the server of `server_url`.
pub struct ScratchDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `orderflow_{purpose}_{random}` on the server of `server_url` (the URL's own
    /// database is only where the `CREATE DATABASE` runs).
    pub async fn create(server_url: &str, purpose: &str) -> Result<Self, ScratchError> {
        let name = format!(
            "orderflow_{purpose}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        connect(server_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|source| ScratchError::Postgres {
                action: format!("creating database {name}"),
                source,
            })?;
        let url = with_database(server_url, &name)?;
        Ok(ScratchDatabase {
            admin_url: server_url.to_owned(),
            name,
            url,
        })
    }

    /// A plain connection to the database (for set-up and ceilings, apart from any pool).
    pub async fn client(&self) -> Result<tokio_postgres::Client, ScratchError> {
        connect(&self.url).await
    }

    /// Drops the database, unless `keep` (then says where it is). Every pool on it must be
    /// closed first, or its connections are killed by the drop.
    pub async fn finish(self, keep: bool) -> Result<(), ScratchError> {
        if keep {
            eprintln!("kept database {} ({})", self.name, self.url);
            return Ok(());
        }
        connect(&self.admin_url)
            .await?
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(|source| ScratchError::Postgres {
                action: format!("dropping database {}", self.name),
                source,
            })
    }
}

/// The JetStream streams of one run's subject prefix on the NATS server at `url`.
pub struct ScratchStreams {
    pub url: String,
    pub subjects: Subjects,
}

impl ScratchStreams {
    /// Deletes the streams under the prefix, unless `keep` (then says which prefix).
    pub async fn finish(self, keep: bool) -> Result<(), ScratchError> {
        if keep {
            eprintln!("kept NATS streams under prefix {}", self.subjects.prefix());
            return Ok(());
        }
        let bus = NatsBus::connect(&self.url, self.subjects, NatsBusConfig::default()).await?;
        bus.delete_streams().await?;
        Ok(())
    }
}

/// Removes (unless `keep`) what a run created: its NATS streams, then its database. Every pool
/// on the database must be closed before.
pub async fn finish(
    streams: Option<ScratchStreams>,
    database: Option<ScratchDatabase>,
    keep: bool,
) -> Result<(), ScratchError> {
    if let Some(streams) = streams {
        streams.finish(keep).await?;
    }
    if let Some(db) = database {
        db.finish(keep).await?;
    }
    Ok(())
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, ScratchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|source| ScratchError::Postgres {
            action: format!("connecting to {}", crate::redact::redact(url)),
            source,
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "scratch admin connection closed");
        }
    });
    Ok(client)
}

/// The same server URL pointing at another database (query string kept).
fn with_database(url: &str, database: &str) -> Result<String, ScratchError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .ok_or_else(|| ScratchError::Url(crate::redact::redact(url)))?
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
            with_database("postgres://u:p@h:5432/test", "b").unwrap(),
            "postgres://u:p@h:5432/b"
        );
        assert_eq!(
            with_database("postgres://u@h", "b").unwrap(),
            "postgres://u@h/b"
        );
        assert_eq!(
            with_database("postgres://h/x?sslmode=disable", "b").unwrap(),
            "postgres://h/b?sslmode=disable"
        );
        assert!(with_database("h:5432/test", "b").is_err());
    }
}
