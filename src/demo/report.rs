//! The report at the end of a run: orders by final status (and by scenario), the stock ledger
//! and oversell, per-RPC latency, events written, the flash sale, and the invariants checked
//! against the event log. Printed as tables, and as JSON with `--json`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use orderflow_domain::order::OrderStatus;
use serde::Serialize;

use super::audit::Audit;
use super::clock::SimClock;
use super::plan::Scenario;
use super::readside::{Agreement, LagSummary};
use super::sim::Submitted;
use super::stats::RpcSummary;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub backend: &'static str,
    pub seed: u64,
    pub scale: Scale,
    pub wall: Wall,
    /// Simulated minutes during which orders arrive (the hour).
    pub order_minutes: u32,
    /// Simulated minutes in all: the hour of orders, then the drain until every order settled.
    pub simulated_minutes: f64,
    pub orders: u64,
    pub orders_by_status: BTreeMap<String, u64>,
    pub orders_by_scenario: BTreeMap<String, BTreeMap<String, u64>>,
    pub late_orders: u64,
    pub compensated: u64,
    /// Offer rounds that expired unanswered (each one re-offered wider).
    pub offers_expired: u64,
    pub events: u64,
    pub events_by_type: BTreeMap<String, u64>,
    pub rpcs: Vec<RpcSummary>,
    pub stock: StockSummary,
    pub flash_sale: Option<FlashSummary>,
    /// How far the read side's slowest projector was behind the log, sampled while it ran.
    pub projection_lag: LagSummary,
    /// Every order's `GetOrder` compared with the fold of its stream.
    pub read_models: Agreement,
    /// Orders submitted per simulated minute, by final status (the chart's data).
    pub per_minute: Vec<BTreeMap<String, u64>>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    pub merchants: usize,
    pub dishes: usize,
    pub riders: usize,
    pub buyers: usize,
    pub planned_orders: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Wall {
    pub seeding_s: f64,
    pub hour_s: f64,
    pub drain_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StockSummary {
    pub skus: usize,
    pub added: i64,
    pub available: i64,
    pub reserved: i64,
    pub deducted: i64,
    pub released: i64,
    /// Units sold beyond what was added, over every SKU (must be 0).
    pub oversell: i64,
    /// SKUs whose ledger breaks `added = available + reserved + deducted` or goes negative.
    pub broken_ledgers: Vec<String>,
    /// SKUs whose reserved + deducted units differ from the units of the orders holding them.
    pub mismatched_holdings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlashSummary {
    pub sku: String,
    pub units: i64,
    pub submits: u64,
    pub created: u64,
    pub out_of_stock: u64,
    pub paid: u64,
    pub cancelled_unpaid: u64,
    pub oversell: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What the run needs to hand the report.
pub struct Inputs<'a> {
    pub backend: &'static str,
    pub seed: u64,
    pub scale: Scale,
    pub wall: Wall,
    pub order_minutes: u32,
    pub clock: &'a SimClock,
    pub audit: &'a Audit,
    pub submitted: &'a HashMap<String, Submitted>,
    pub rpcs: Vec<RpcSummary>,
    pub flash_sku: Option<String>,
    pub projection_lag: LagSummary,
    pub read_models: Agreement,
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Report {
        let audit = i.audit;
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_scenario: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut per_minute: Vec<BTreeMap<String, u64>> = Vec::new();
        let mut unexpected = Vec::new();
        let mut held: HashMap<String, i64> = HashMap::new();
        let (mut late, mut compensated, mut late_open) = (0, 0, 0);
        for (no, order) in &audit.orders {
            let status = order.status.as_str().to_owned();
            *by_status.entry(status.clone()).or_default() += 1;
            let minute = i.clock.sim_time_of(order.submitted_at).as_secs() / 60;
            let minute = usize::try_from(minute).unwrap_or(usize::MAX).min(10_000);
            if per_minute.len() <= minute {
                per_minute.resize_with(minute + 1, BTreeMap::new);
            }
            *per_minute[minute].entry(status.clone()).or_default() += 1;
            if let Some(s) = i.submitted.get(no) {
                *by_scenario
                    .entry(s.scenario.label().to_owned())
                    .or_default()
                    .entry(status)
                    .or_default() += 1;
                if !expected(s).contains(&order.status) {
                    unexpected.push(format!("{no} ({}) {}", s.scenario.label(), order.status));
                }
            }
            if order.late {
                late += 1;
                if order.compensation.is_some() {
                    compensated += 1;
                } else {
                    late_open += 1;
                }
            }
            // Units the order holds in the ledger: reserved while CREATED, deducted once paid.
            let holds = order.status == OrderStatus::Created || order.paid_by.is_some();
            if holds {
                for line in &order.lines {
                    *held.entry(line.sku.to_string()).or_default() += line.quantity.get();
                }
            }
        }
        let stock = stock_summary(audit, &held);
        let flash_sale = i.flash_sku.as_deref().map(|sku| flash_summary(audit, sku));
        let orders = audit.orders.len() as u64;
        let terminal = audit
            .orders
            .values()
            .filter(|o| o.status.is_terminal())
            .count() as u64;
        let missing = i
            .submitted
            .keys()
            .filter(|no| !audit.orders.contains_key(*no))
            .count();
        let mut checks = vec![
            Check {
                name: "no oversell",
                ok: stock.oversell == 0 && stock.broken_ledgers.is_empty(),
                detail: format!(
                    "oversell {} over {} skus; ledgers broken: {:?}",
                    stock.oversell, stock.skus, stock.broken_ledgers
                ),
            },
            Check {
                name: "stock held = order lines",
                ok: stock.mismatched_holdings.is_empty(),
                detail: format!(
                    "reserved + deducted per sku equals the units of the orders holding it; \
                     mismatched: {:?}",
                    stock.mismatched_holdings
                ),
            },
            Check {
                name: "every order settled",
                ok: terminal == orders,
                detail: format!("{terminal} of {orders} orders CLOSED, CANCELLED or FAILED"),
            },
            Check {
                name: "counts add up",
                ok: missing == 0
                    && i.submitted.len() as u64 == orders
                    && by_status.values().sum::<u64>() == orders
                    && audit.unreadable == 0,
                detail: format!(
                    "{} submits answered, {orders} orders in the log, {missing} answered but \
                     missing, {} unreadable events",
                    i.submitted.len(),
                    audit.unreadable
                ),
            },
            Check {
                name: "every order as its scenario expects",
                ok: unexpected.is_empty(),
                detail: format!(
                    "{} unexpected{}",
                    unexpected.len(),
                    if unexpected.is_empty() {
                        String::new()
                    } else {
                        format!(": {:?}", &unexpected[..unexpected.len().min(5)])
                    }
                ),
            },
            Check {
                name: "late orders compensated",
                ok: late_open == 0,
                detail: format!("{late} late, {compensated} compensated"),
            },
        ];
        let r = &i.read_models;
        checks.push(Check {
            name: "read models agree with the event log",
            ok: r.disagreeing.is_empty() && r.compared == orders,
            detail: format!(
                "GetOrder for {} orders: {} differ from their stream's fold{}",
                r.compared,
                r.disagreeing.len(),
                if r.disagreeing.is_empty() {
                    String::new()
                } else {
                    format!(": {:?}", &r.disagreeing[..r.disagreeing.len().min(5)])
                }
            ),
        });
        if let Some(f) = &flash_sale {
            checks.push(Check {
                name: "flash sale: no oversell",
                ok: f.oversell == 0 && f.created as i64 <= f.units,
                detail: format!(
                    "{} units, {} orders created, {} out of stock",
                    f.units, f.created, f.out_of_stock
                ),
            });
        }
        Report {
            backend: i.backend,
            seed: i.seed,
            scale: i.scale,
            wall: i.wall,
            order_minutes: i.order_minutes,
            simulated_minutes: i.clock.elapsed().as_secs_f64() / 60.0,
            orders,
            orders_by_status: by_status,
            orders_by_scenario: by_scenario,
            late_orders: late,
            compensated,
            offers_expired: audit
                .events_by_type
                .get("OfferExpired")
                .copied()
                .unwrap_or(0),
            events: audit.events,
            events_by_type: audit.events_by_type.clone(),
            rpcs: i.rpcs,
            stock,
            flash_sale,
            projection_lag: i.projection_lag,
            read_models: i.read_models,
            per_minute,
            checks,
        }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as tables, for people.
    pub fn print(&self, chart: Option<&str>) {
        let w = &self.wall;
        println!();
        println!(
            "orderflow demo ({}, seed {}): {} merchants ({} dishes), {} riders, {} buyers",
            self.backend,
            self.seed,
            self.scale.merchants,
            self.scale.dishes,
            self.scale.riders,
            self.scale.buyers
        );
        println!(
            "{} simulated minutes of orders, then {:.0} more until every order settled; \
             {:.1} s of wall time (seeding {:.1} s, the orders {:.1} s, the drain {:.1} s)",
            self.order_minutes,
            self.simulated_minutes - f64::from(self.order_minutes),
            w.total_s,
            w.seeding_s,
            w.hour_s,
            w.drain_s
        );
        println!();
        println!("orders: {}", self.orders);
        for (status, n) in &self.orders_by_status {
            println!("  {status:<12} {n:>7}");
        }
        println!(
            "  late {}, compensated {}; offer rounds expired and re-offered {}",
            self.late_orders, self.compensated, self.offers_expired
        );
        println!();
        println!("by scenario (final status):");
        for (scenario, statuses) in &self.orders_by_scenario {
            let parts: Vec<String> = statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!("  {scenario:<16} {}", parts.join(", "));
        }
        if let Some(f) = &self.flash_sale {
            println!();
            println!(
                "flash sale on {}: {} units, {} submits → {} created, {} out of stock; {} paid, \
                 {} cancelled unpaid; oversell {}",
                f.sku,
                f.units,
                f.submits,
                f.created,
                f.out_of_stock,
                f.paid,
                f.cancelled_unpaid,
                f.oversell
            );
        }
        let s = &self.stock;
        println!();
        println!(
            "stock over {} skus: added {}, available {}, reserved {}, deducted {}, released {}; \
             oversell {}",
            s.skus, s.added, s.available, s.reserved, s.deducted, s.released, s.oversell
        );
        println!();
        println!(
            "{:<16} {:>8} {:>8} {:>9} {:>9} {:>9}  refusals",
            "rpc", "calls", "ok", "p50 ms", "p99 ms", "max ms"
        );
        for r in &self.rpcs {
            let errors: Vec<String> = r.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
            println!(
                "{:<16} {:>8} {:>8} {:>9.2} {:>9.2} {:>9.2}  {}",
                r.rpc,
                r.calls,
                r.ok,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                errors.join(", ")
            );
        }
        println!();
        println!(
            "events written: {} ({:.0}/s of wall time)",
            self.events,
            self.events as f64 / w.total_s.max(0.001)
        );
        let lag = &self.projection_lag;
        println!(
            "projection lag (slowest projector, events behind the log, {} samples): p50 {}, \
             p99 {}, max {}; at the end {}",
            lag.samples, lag.p50_events, lag.p99_events, lag.max_events, lag.at_end_events
        );
        println!();
        println!("checks against the event log:");
        for c in &self.checks {
            println!(
                "  [{}] {:<38} {}",
                if c.ok { "ok" } else { "FAILED" },
                c.name,
                c.detail
            );
        }
        if let Some(path) = chart {
            println!();
            println!("chart of orders per simulated minute by final status: {path}");
        }
    }
}

/// The final statuses an order of this scenario may end in (FAILED: it found no stock).
fn expected(s: &Submitted) -> &'static [OrderStatus] {
    use OrderStatus::*;
    match s.scenario {
        Scenario::BuyerCancels | Scenario::PaymentTimeout => &[Cancelled, Failed],
        Scenario::FlashSale if !s.pays => &[Cancelled, Failed],
        _ => &[Closed, Failed],
    }
}

fn stock_summary(audit: &Audit, held: &HashMap<String, i64>) -> StockSummary {
    let mut s = StockSummary {
        skus: audit.skus.len(),
        added: 0,
        available: 0,
        reserved: 0,
        deducted: 0,
        released: 0,
        oversell: 0,
        broken_ledgers: Vec::new(),
        mismatched_holdings: Vec::new(),
    };
    for (sku, state) in &audit.skus {
        let l = state.stock();
        s.added += l.added;
        s.available += l.available;
        s.reserved += l.reserved;
        s.deducted += l.deducted;
        s.released += l.released;
        s.oversell += (l.reserved + l.deducted - l.added).max(0);
        let identity = l.added == l.available + l.reserved + l.deducted;
        if !identity || l.available < 0 || l.reserved < 0 || l.deducted < 0 {
            s.broken_ledgers.push(sku.clone());
        }
        let holding = held.get(sku).copied().unwrap_or(0);
        if holding != l.reserved + l.deducted {
            s.mismatched_holdings.push(format!(
                "{sku}: ledger {} vs orders {holding}",
                l.reserved + l.deducted
            ));
        }
    }
    s
}

fn flash_summary(audit: &Audit, sku: &str) -> FlashSummary {
    let ledger = audit.skus.get(sku).map(|s| s.stock()).unwrap_or_default();
    let mut f = FlashSummary {
        sku: sku.to_owned(),
        units: ledger.added,
        submits: 0,
        created: 0,
        out_of_stock: 0,
        paid: 0,
        cancelled_unpaid: 0,
        oversell: (ledger.reserved + ledger.deducted - ledger.added).max(0),
    };
    for order in audit.orders.values() {
        if !order.lines.iter().any(|l| l.sku.to_string() == sku) {
            continue;
        }
        f.submits += 1;
        match order.status {
            OrderStatus::Creating => {}
            OrderStatus::Failed => f.out_of_stock += 1,
            OrderStatus::Cancelled => {
                f.created += 1;
                f.cancelled_unpaid += 1;
            }
            _ => f.created += 1,
        }
        if order.paid_by.is_some() {
            f.paid += 1;
        }
    }
    f
}

/// Seconds with one decimal, for the wall-time table.
pub fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}
