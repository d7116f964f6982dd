//! A merchant closing while buyers submit. The submit path believes "open" for
//! `OPEN_TTL` without reading the merchant (service/merchants.rs); a submit accepted in that
//! window is failed by the reservation saga with MERCHANT_CLOSED, and after it the submit
//! itself refuses.

mod common;

use common::*;
use orderflow_command_service::service::merchants::OPEN_TTL;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::FailureReason;
use tonic::Code;

#[tokio::test]
async fn a_submit_just_after_a_close_fails_through_the_saga_and_later_ones_are_refused() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    orderflow_command_service::processes::start(&t.app);
    let before = submitted_order(&mut t, "sub-1").await;
    assert_eq!(outcome(&t, &before).await, (OrderStatus::Created, None));

    // Merchant 7 was just read open: within the window the close is not seen at submit...
    t.close_merchant().await;
    let late = submitted_order(&mut t, "sub-2").await;
    // ...but the saga reads the merchant after the close committed, and reserves nothing.
    assert_eq!(
        outcome(&t, &late).await,
        (OrderStatus::Failed, Some(FailureReason::MerchantClosed))
    );

    // Past the window the submit reads the merchant again and refuses at once.
    t.clock.advance(OPEN_TTL);
    let events = t.total_events().await;
    let refused = t
        .client
        .submit_order(t.buyer(submit("sub-3", BUYER, 1)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        refused
            .metadata()
            .get("orderflow-failure-reason")
            .and_then(|v| v.to_str().ok()),
        Some("MERCHANT_CLOSED")
    );
    assert_eq!(t.total_events().await, events, "a refusal appends nothing");
}

#[tokio::test]
async fn a_merchant_never_opened_is_not_found() {
    let mut t = spawn_app().await;
    let err = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}
