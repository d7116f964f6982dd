//! The server around the service: health, reflection, graceful shutdown.

mod common;

use common::*;
use orderflow_command_service::CommandApp;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test]
async fn health_answers_serving_without_a_token() {
    let t = spawn_app().await;
    let mut health = HealthClient::new(t.channel.clone());
    for service in ["", "orderflow.v1.CommandService"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }
    t.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let t = spawn_app().await;
    let mut reflection = ServerReflectionClient::new(t.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "orderflow.v1.CommandService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_drains_and_stops_the_background_tasks() {
    let mut t = spawn_app().await;
    assert_eq!(t.app.background_tasks(), vec!["relay".to_string()]);
    with_menu(&mut t).await;
    let app: CommandApp = t.app.clone();
    t.stop().await.unwrap();
    // Every task was joined: none is left to wait for.
    assert!(app.background_tasks().is_empty());
}

#[tokio::test]
async fn background_tasks_get_a_token_cancelled_on_shutdown() {
    let t = spawn_app().await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    t.app.spawn_background("probe", move |token| async move {
        token.cancelled().await;
        let _ = tx.send("stopped");
        Ok::<(), std::convert::Infallible>(())
    });
    t.stop().await.unwrap();
    assert_eq!(rx.await.unwrap(), "stopped");
}
