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
use orderflow_infra::bus::Subjects;
use orderflow_infra::store::{PgStoreConfig, ShardMap};
use orderflow_query_service::ReadApp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::clock::SimClock;
use super::DemoError;
use crate::scratch::{self, ScratchDatabase, ScratchStreams};

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
    pub database: Option<ScratchDatabase>,
    /// The run's NATS prefix (durable runs), its streams deleted unless kept.
    pub nats: Option<ScratchStreams>,
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
                let db = ScratchDatabase::create(database_url, "demo").await?;
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
                (
                    app,
                    Some(db),
                    Some(ScratchStreams {
                        url: nats_url.clone(),
                        subjects,
                    }),
                )
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
        let (streams, database) = (self.nats.take(), self.database.take());
        // The app's pools must be gone before the database is dropped.
        drop(self);
        Ok(scratch::finish(streams, database, keep).await?)
    }
}
