//! The command side's process managers, started as named background tasks of a
//! [`CommandApp`]: the rider-geo index and the notifier, the deadline scheduler and firer
//! (with the reservation reaper), and the submit/settlement saga.
//!
//! Kept apart from [`CommandApp::builder`] on purpose: tests of the gRPC surface drive orders
//! through their states by hand and must not race a saga; `serve` and the end-to-end tests
//! call [`start`] right after building the app.

use std::sync::Arc;

use orderflow_domain::Shard;

use crate::app::CommandApp;
use crate::deadlines::{
    DeadlineFirer, DeadlineScheduler, DeadlineStore, FirerConfig, MemoryDeadlineStore,
    PgDeadlineStore, Wakeup,
};
use crate::riders::{run_index_updater, Notifier, OfferPolicy, RiderGeoIndex};
use crate::saga::{Saga, SagaConfig};

/// Handles on what the process managers keep in memory, for the query side.
#[derive(Clone)]
pub struct Processes {
    pub rider_index: Arc<RiderGeoIndex>,
    pub deadlines: Arc<dyn DeadlineStore>,
}

/// Starts every process manager of the command side on `app`.
pub fn start(app: &CommandApp) -> Processes {
    let saga = Saga::new(
        app.executor().clone(),
        app.stock().clone(),
        app.bus().clone(),
        app.checkpoints().clone(),
        app.clock().clone(),
        SagaConfig::new(app.config().clone()),
    );
    app.spawn_background("saga", move |token| saga.run(token));

    let rider_index = Arc::new(RiderGeoIndex::new());
    {
        let (index, store) = (rider_index.clone(), app.store().clone());
        app.spawn_background("rider-geo-index", move |token| {
            run_index_updater(index, store, token)
        });
    }
    let notifier = Notifier::new(
        app.executor().clone(),
        app.bus().clone(),
        app.checkpoints().clone(),
        rider_index.clone(),
        app.clock().clone(),
        OfferPolicy::from_config(app.config()),
    );
    app.spawn_background("notifier", move |token| notifier.run(token));

    // Deadlines live beside the events of shard 0's database (the checkpoints do too).
    let deadlines: Arc<dyn DeadlineStore> = match app.postgres() {
        Some(pg) => Arc::new(PgDeadlineStore::new(pg.pool(Shard::of_id(0)).clone())),
        None => Arc::new(MemoryDeadlineStore::new()),
    };
    let wakeup = Wakeup::new();
    let scheduler =
        DeadlineScheduler::new(deadlines.clone(), app.config().close_after, wakeup.clone());
    {
        let (bus, checkpoints) = (app.bus().clone(), app.checkpoints().clone());
        app.spawn_background("deadline-scheduler", move |token| {
            scheduler.run(
                bus,
                checkpoints,
                DeadlineScheduler::consumer_config(),
                token,
            )
        });
    }
    let firer = DeadlineFirer::new(
        deadlines.clone(),
        app.executor().clone(),
        app.stock().clone(),
        app.clock().clone(),
        wakeup,
    )
    .with_config(FirerConfig {
        retention: app.config().deadline_retention,
        ..FirerConfig::default()
    });
    app.spawn_background("deadline-firer", move |token| firer.run(token));

    Processes {
        rider_index,
        deadlines,
    }
}
