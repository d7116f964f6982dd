//! The system the demo drives: the same command app `serve` builds (store, bus, relay, every
//! process manager) and the read app (order projections, `QueryService`), on the demo's
//! simulated clock, served together over gRPC on `127.0.0.1:0` in this process. Embedded (memory store, in-process bus: nothing durable), or PostgreSQL + NATS in a
//! fresh database and under a fresh subject prefix, both removed at the end unless kept.

use std::net::SocketAddr;
use std::sync::Arc;

use orderflow_command_service::processes::{self, Processes};
use orderflow_command_service::{server, AppError, CommandApp, CommandConfig};
use orderflow_domain::Shard;
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::bus::{NatsBus, NatsBusConfig, Subjects};
use orderflow_infra::store::{PgStoreConfig, ShardMap};
use orderflow_query_service::ReadApp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::clock::SimClock;
use super::DemoError;

/// Where the demo's events go.
#[derive(Debug, Clone)]
pub enum Backend {
    Embedded,
    /// A fresh database on this server and a fresh prefix under `nats_prefix`.
    Durable {
        database_url: String,
        nats_url: String,
        nats_prefix: String,
    },
}

pub struct System {
    pub app: CommandApp,
    pub processes: Processes,
    /// The read side: memory read models when embedded, PostgreSQL tables otherwise.
    pub read: ReadApp,
    pub addr: SocketAddr,
    pub auth: JwtAuth,
    /// The run's database (durable runs), dropped by [`System::finish`] unless kept.
    pub database: Option<DemoDatabase>,
    /// The run's NATS prefix (durable runs), its streams deleted unless kept.
    pub nats: Option<(String, Subjects)>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), AppError>>>,
}

impl System {
    pub async fn start(
        backend: &Backend,
        clock: &SimClock,
        config: CommandConfig,
    ) -> Result<Self, DemoError> {
        // A random secret per run: this run's tokens are worthless anywhere else.
        let secret = JwtSecret::new(uuid::Uuid::new_v4().as_bytes().repeat(2))
            .map_err(|e| DemoError::Setup(format!("jwt secret: {e}")))?;
        let auth = JwtAuth::new(&secret);
        let builder = CommandApp::builder(auth.clone())
            .config(config)
            .clock(Arc::new(clock.manual()));
        let (app, database, nats) = match backend {
            Backend::Embedded => (builder.embedded().build().await?, None, None),
            Backend::Durable {
                database_url,
                nats_url,
                nats_prefix,
            } => {
                let db = DemoDatabase::create(database_url).await?;
                let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
                let prefix = format!("{nats_prefix}-demo-{run}");
                let subjects = Subjects::new(prefix.clone())?;
                let built = builder
                    .nats_prefix(prefix)
                    .postgres_nats(PgStoreConfig::new(ShardMap::single(&db.url)), nats_url)
                    .build()
                    .await;
                let app = match built {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = db.finish(false).await;
                        return Err(e.into());
                    }
                };
                (app, Some(db), Some((nats_url.clone(), subjects)))
            }
        };
        let processes = processes::start(&app);
        let sim_now = clock.clone();
        let read = ReadApp::builder(auth.clone(), app.store().clone())
            .now(Arc::new(move || sim_now.now()));
        // The read models live beside shard 0's events, as the deadlines and checkpoints do.
        let read = match app.postgres() {
            Some(pg) => read.postgres(pg.pool(Shard::of_id(0)).clone()),
            None => read.memory(),
        }
        .start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let query = read.query_service();
        let draining = read.clone();
        let server = tokio::spawn(server::run_with(
            app.clone(),
            listener,
            async move {
                let _ = stopped.await;
                // Long-polls answer now, so the drain does not wait for them.
                draining.begin_shutdown();
            },
            move |routes| routes.add_service(query),
        ));
        Ok(System {
            app,
            processes,
            read,
            addr,
            auth,
            database,
            nats,
            stop: Some(stop),
            server: Some(server),
        })
    }

    pub fn kind(&self) -> &'static str {
        if self.database.is_some() {
            "postgres+nats"
        } else {
            "embedded"
        }
    }

    /// `n` HTTP/2 connections to the server.
    pub async fn channels(&self, n: usize) -> Result<Vec<Channel>, DemoError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let channel = Channel::from_shared(format!("http://{}", self.addr))
                .map_err(|e| DemoError::Setup(format!("server uri: {e}")))?
                .connect()
                .await
                .map_err(AppError::from)?;
            out.push(channel);
        }
        Ok(out)
    }

    /// Drains the server and stops the app (process managers, store).
    pub async fn stop(&mut self) -> Result<(), DemoError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .map_err(|e| DemoError::Setup(format!("server task: {e}")))??;
        }
        self.read.shutdown().await;
        Ok(())
    }

    /// Stops, then deletes the run's NATS streams and drops its database, unless `keep`.
    pub async fn finish(mut self, keep: bool) -> Result<(), DemoError> {
        self.stop().await?;
        if let Some((url, subjects)) = self.nats.take() {
            if keep {
                eprintln!("kept NATS streams under prefix {}", subjects.prefix());
            } else {
                let bus = NatsBus::connect(&url, subjects, NatsBusConfig::default()).await?;
                bus.delete_streams().await?;
            }
        }
        let database = self.database.take();
        // The app's pools must be gone before the database is dropped.
        drop(self);
        if let Some(db) = database {
            db.finish(keep).await?;
        }
        Ok(())
    }
}

/// A fresh database per durable run, on the server the user named.
pub struct DemoDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl DemoDatabase {
    async fn create(server_url: &str) -> Result<Self, DemoError> {
        let name = format!(
            "orderflow_demo_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        connect(server_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = with_database(server_url, &name)?;
        Ok(DemoDatabase {
            admin_url: server_url.to_owned(),
            name,
            url,
        })
    }

    async fn finish(self, keep: bool) -> Result<(), DemoError> {
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
            .await?;
        Ok(())
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, DemoError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "demo: admin connection closed");
        }
    });
    Ok(client)
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> Result<String, DemoError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .ok_or_else(|| DemoError::Setup("--database-url must be a postgres:// url".into()))?;
    let host_part = &base[scheme_end + 3..];
    let path_start = host_part.find('/').map(|i| scheme_end + 3 + i);
    let server = path_start.map_or(base, |i| &base[..i]);
    Ok(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test", "x").unwrap(),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x").unwrap(),
            "postgres://h:5432/x"
        );
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x").unwrap(),
            "postgres://h/x?sslmode=disable"
        );
        assert!(with_database("nonsense", "x").is_err());
    }
}
