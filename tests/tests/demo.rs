//! `orderflow demo` at a small scale, embedded and on PostgreSQL + NATS: the whole simulated
//! city (merchants, moving riders, buyers, a flash sale, every scenario) through the gRPC API,
//! and the report's invariants checked against the event log.

use std::time::Duration;

use orderflow::demo::plan::Scenario;
use orderflow::demo::progress::Progress;
use orderflow::demo::{run_demo, Backend, DemoOptions, Report};
use orderflow_command_service::CommandConfig;
use orderflow_infra::testing::{nats_url, unique_name};

const FLASH_UNITS: i64 = 15;

/// A city small enough for a debug build on two shared cores.
fn small_city(backend: Backend) -> DemoOptions {
    DemoOptions {
        backend,
        merchants: 8,
        riders: 40,
        buyers: 200,
        orders: 150,
        minutes: 15,
        flash_units: FLASH_UNITS,
        flash_submits: 60,
        seed: 7,
        report_every: Duration::from_secs(60),
        speed: 600.0,
        keep: false,
        config: CommandConfig::default(),
    }
}

fn assert_invariants(report: &Report) {
    for check in &report.checks {
        assert!(check.ok, "check {:?} failed: {}", check.name, check.detail);
    }
    // No oversell, and the ledger identity on every sku.
    assert_eq!(report.stock.oversell, 0);
    assert!(report.stock.broken_ledgers.is_empty());
    assert_eq!(
        report.stock.added,
        report.stock.available + report.stock.reserved + report.stock.deducted
    );
    assert_eq!(report.stock.reserved, 0, "every reservation settled");
    // Counts add up: every planned order was submitted and is in the log, in a final status.
    assert_eq!(report.orders, report.scale.planned_orders as u64);
    assert_eq!(report.orders_by_status.values().sum::<u64>(), report.orders);
    for status in report.orders_by_status.keys() {
        assert!(
            ["CLOSED", "CANCELLED", "FAILED"].contains(&status.as_str()),
            "{status} is not final"
        );
    }
    // Every scenario happened.
    for scenario in Scenario::ALL {
        assert!(
            report.orders_by_scenario.contains_key(scenario.label()),
            "no {} order in {:?}",
            scenario.label(),
            report.orders_by_scenario
        );
    }
    // The flash sale sold exactly its stock, no more.
    let flash = report.flash_sale.as_ref().expect("a flash sale ran");
    assert_eq!(flash.units, FLASH_UNITS);
    assert_eq!(flash.created as i64, FLASH_UNITS);
    assert_eq!(flash.out_of_stock, flash.submits - flash.created);
    assert_eq!(flash.oversell, 0);
    // Offer timeouts were re-offered, late deliveries compensated.
    assert!(report.offers_expired > 0);
    assert!(report.late_orders > 0);
    assert_eq!(report.compensated, report.late_orders);
    // The per-RPC figures and the events exist.
    let submit = report.rpcs.iter().find(|r| r.rpc == "SubmitOrder").unwrap();
    assert_eq!(submit.calls, report.orders);
    assert!(report
        .rpcs
        .iter()
        .any(|r| r.rpc == "ReportLocation" && r.ok > 0));
    assert!(report.events > report.orders * 4);
    assert!(!report.per_minute.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_demo_keeps_every_invariant() -> anyhow::Result<()> {
    let report = run_demo(&small_city(Backend::Embedded), &Progress::new(false)).await?;
    assert_eq!(report.backend, "embedded");
    assert_invariants(&report);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_on_postgres_and_nats_keeps_every_invariant() -> anyhow::Result<()> {
    let database_url = std::env::var("ORDERFLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let backend = Backend::Durable {
        database_url,
        nats_url: nats_url(),
        nats_prefix: unique_name("e2e"),
    };
    // Slower and shorter: the process managers on PostgreSQL + NATS answer in hundreds of
    // milliseconds in a debug build, and the windows are shortened so the drain is short.
    let options = DemoOptions {
        orders: 60,
        minutes: 10,
        flash_submits: 40,
        speed: 20.0,
        config: CommandConfig {
            payment_window: Duration::from_secs(5 * 60),
            reservation_ttl: Duration::from_secs(6 * 60),
            close_after: Duration::from_secs(2 * 60),
            ..CommandConfig::default()
        },
        ..small_city(backend)
    };
    let report = run_demo(&options, &Progress::new(false)).await?;
    assert_eq!(report.backend, "postgres+nats");
    assert_invariants(&report);
    Ok(())
}
