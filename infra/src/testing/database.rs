//! A uniquely named PostgreSQL database per test, so tests run in parallel without colliding.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Where the tests' PostgreSQL server is: `ORDERFLOW_TEST_DATABASE_URL`, or the machine's.
fn admin_url() -> String {
    std::env::var("ORDERFLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Where the tests' NATS server is: `ORDERFLOW_TEST_NATS_URL`, or the machine's.
pub fn nats_url() -> String {
    std::env::var("ORDERFLOW_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A name no other test run uses: `{prefix}_{12 hex chars}`, lowercase (valid as a database
/// name, a NATS subject token and a stream name).
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

/// A fresh, empty database that lives until the end of the test process.
///
/// It is not dropped automatically (a `Drop` cannot await); every name starts with
/// `orderflow_test_` so a sweep can remove old ones.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates the database. Panics with a clear message when PostgreSQL is unreachable:
    /// these tests need it, and `.ci/run` starts it.
    pub async fn create() -> TestDatabase {
        let admin = admin_url();
        let (client, connection) = tokio_postgres::connect(&admin, NoTls)
            .await
            .unwrap_or_else(|e| panic!("tests need PostgreSQL at {admin}: {e}"));
        tokio::spawn(connection);
        let name = unique_name("orderflow_test");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let url = match admin.rsplit_once('/') {
            Some((server, _db)) => format!("{server}/{name}"),
            None => panic!("ORDERFLOW_TEST_DATABASE_URL must end with /database: {admin}"),
        };
        TestDatabase { name, url }
    }

    /// A small pool on this database.
    pub fn pool(&self, size: usize) -> Pool {
        let config: tokio_postgres::Config = self.url.parse().expect("test database url");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .build()
            .expect("test pool")
    }
}
