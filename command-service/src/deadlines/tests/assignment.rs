//! The rider-assignment reconciler: a rider assigned to an order that did not go to them (a
//! crash between the grab's two steps) gets the slot back; the winner keeps theirs.

use orderflow_domain::rider::{Rider, RiderCommand, RiderState};
use orderflow_domain::{Capacity, GeoPoint};

use super::*;

impl Harness {
    async fn rider_command(&self, command: RiderCommand) {
        let id = self.command_id("rider");
        self.executor
            .execute::<Rider>(&rider().stream_id(), &command, &meta(&id, self.clock.now()))
            .await
            .expect("rider command");
    }

    async fn rider_state(&self) -> RiderState {
        self.executor
            .load::<Rider>(&rider().stream_id())
            .await
            .expect("rider")
            .state
    }

    /// An order offered to rider 5 (online, room for 3), the rider assigned to it at `at`
    /// (the grab's first step) and nothing more: the process died before the order's `Grab`.
    async fn assigned_but_not_grabbed(&self, n: u32, at: Timestamp) -> OrderNo {
        let order = self.created_order(n).await;
        self.pay(&order).await;
        self.notify(&order, 1).await;
        self.rider_command(RiderCommand::GoOnline {
            location: GeoPoint::new(31.23, 121.47).unwrap(),
            capacity: Capacity::new(3).unwrap(),
            at,
        })
        .await;
        self.rider_command(RiderCommand::AssignOrder {
            order_no: order.clone(),
            at,
        })
        .await;
        order
    }
}

fn assignment_key(order: &OrderNo) -> String {
    format!("assignment:{}:{order}", rider())
}

#[tokio::test]
async fn a_rider_left_assigned_to_an_order_it_did_not_win_is_released() {
    let h = Harness::memory().await;
    // Given an assignment 45 s old, whose check is due in 15 s, and the offer open for 30 s...
    let now = h.clock.now();
    let assigned_at = Timestamp::from_millis(now.as_millis() - 45_000);
    let order = h.assigned_but_not_grabbed(1, assigned_at).await;
    h.caught_up().await;
    assert!(h.open_keys().await.contains(&assignment_key(&order)));
    let firer = h.firer();

    // ...while the offer is open the grab may still land: the check waits for its expiry...
    assert_eq!(
        firer.tick(now.plus(Duration::from_secs(15))).await.unwrap(),
        1
    );
    assert!(h.rider_state().await.active_orders.contains(&order));
    assert!(h.open_keys().await.contains(&assignment_key(&order)));

    // ...when it has expired and the order is not the rider's, the slot is given back, once.
    let expiry = now.plus(h.config.offer_window);
    firer.tick(expiry).await.unwrap();
    assert!(h.rider_state().await.active_orders.is_empty());
    h.caught_up().await;
    assert!(!h.open_keys().await.contains(&assignment_key(&order)));
    assert_ne!(h.status(&order).await, Some(OrderStatus::Delivering));
}

#[tokio::test]
async fn the_rider_who_won_keeps_the_order() {
    let h = Harness::memory().await;
    let order = h.assigned_but_not_grabbed(1, h.clock.now()).await;
    h.grab(&order, 1).await;
    h.caught_up().await;
    let check = after(ASSIGNMENT_CHECK_AFTER);
    let firer = h.firer();
    firer.tick(check).await.unwrap();
    assert!(h.rider_state().await.active_orders.contains(&order));
    assert!(!h.open_keys().await.contains(&assignment_key(&order)));
}

#[tokio::test]
async fn a_released_slot_cancels_the_check() {
    let h = Harness::memory().await;
    let order = h.assigned_but_not_grabbed(1, h.clock.now()).await;
    h.rider_command(RiderCommand::UnassignOrder {
        order_no: order.clone(),
        at: h.clock.now(),
    })
    .await;
    h.caught_up().await;
    assert!(!h.open_keys().await.contains(&assignment_key(&order)));
}
