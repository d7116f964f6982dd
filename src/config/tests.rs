use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// The layers of a file's text, an environment and flags, validated.
fn load(
    file: Option<&str>,
    environment: &[(&str, &str)],
    flags: ServeFlags,
) -> Result<ServeConfig, ConfigError> {
    let file = file.map(|text| (text, Path::new("orderflow.toml")));
    let layers = Layers::from_sources(file, env(environment), &flags.values())?;
    ServeConfig::from_layers(layers)
}

#[test]
fn no_configuration_means_embedded_with_the_contracts_defaults() {
    let c = load(None, &[], ServeFlags::default()).unwrap();
    assert!(c.embedded());
    assert_eq!(c.role, Role::All);
    assert_eq!(c.listen, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(c.metrics_listen, "127.0.0.1:9464".parse().unwrap());
    assert_eq!(c.nats_prefix, "orderflow");
    assert!(c.jwt_secret.is_none());
    assert_eq!(c.business, CommandConfig::default());
}

#[test]
fn file_overrides_defaults_env_overrides_file_flags_override_env() {
    let file = r#"
        listen = "127.0.0.1:7001"
        metrics_listen = "127.0.0.1:7002"
        nats_prefix = "from_file"
        offer_fanout = 7
        offer_window = "2s"
    "#;
    let environment = [
        ("ORDERFLOW_METRICS_LISTEN", "127.0.0.1:8002"),
        ("ORDERFLOW_NATS_PREFIX", "from_env"),
        ("ORDERFLOW_OFFER_WINDOW", "3s"),
    ];
    let flags = ServeFlags {
        nats_prefix: Some("from_flag".into()),
        ..ServeFlags::default()
    };
    let c = load(Some(file), &environment, flags).unwrap();
    assert_eq!(
        c.listen,
        "127.0.0.1:7001".parse().unwrap(),
        "file over default"
    );
    assert_eq!(
        c.metrics_listen,
        "127.0.0.1:8002".parse().unwrap(),
        "env over file"
    );
    assert_eq!(c.nats_prefix, "from_flag", "flag over env");
    assert_eq!(c.business.offer_fanout, 7, "a business key from the file");
    assert_eq!(c.business.offer_window, Duration::from_secs(3));
    let sources: HashMap<_, _> = c.describe().into_iter().map(|(k, _, s)| (k, s)).collect();
    assert_eq!(sources["listen"], Source::File("orderflow.toml".into()));
    assert_eq!(
        sources["metrics_listen"],
        Source::Env("ORDERFLOW_METRICS_LISTEN")
    );
    assert_eq!(sources["nats_prefix"], Source::Flag("--nats-prefix"));
    assert_eq!(sources["role"], Source::Default);
}

#[test]
fn a_real_file_is_read_and_a_missing_one_is_named() {
    let path = std::env::temp_dir().join(format!("orderflow-config-{}.toml", std::process::id()));
    std::fs::write(&path, "role = \"command\"\n").unwrap();
    let flags = ServeFlags {
        config: Some(path.clone()),
        ..ServeFlags::default()
    };
    let c = ServeConfig::load(&flags, env(&[])).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(c.role, Role::Command);

    let err = ServeConfig::load(&flags, env(&[])).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read config file"),
        "{err}"
    );
}

#[test]
fn durable_mode_needs_both_urls_and_a_secret() {
    let db = ("ORDERFLOW_DATABASE_URL", "postgres://u:pw@localhost/of");
    let nats = ("ORDERFLOW_NATS_URL", "nats://127.0.0.1:4222");
    let secret = ("ORDERFLOW_JWT_SECRET", SECRET);
    let c = load(None, &[db, nats, secret], ServeFlags::default()).unwrap();
    assert!(!c.embedded());

    let err = load(None, &[db, secret], ServeFlags::default()).unwrap_err();
    assert!(err.to_string().contains("nats_url is not"), "{err}");
    let err = load(None, &[nats, secret], ServeFlags::default()).unwrap_err();
    assert!(err.to_string().contains("database_url is not"), "{err}");
    let err = load(None, &[db, nats], ServeFlags::default()).unwrap_err();
    assert!(err.to_string().starts_with("jwt_secret"), "{err}");
}

#[test]
fn errors_name_the_key_the_value_and_its_source() {
    let err = load(
        None,
        &[("ORDERFLOW_LISTEN", "localhost")],
        ServeFlags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("listen = \"localhost\" (from env ORDERFLOW_LISTEN): must be an ip:port"),
        "{err}"
    );

    let flags = ServeFlags {
        role: Some("reader".into()),
        ..ServeFlags::default()
    };
    let err = load(None, &[], flags).unwrap_err().to_string();
    assert!(
        err.starts_with("role = \"reader\" (from flag --role)"),
        "{err}"
    );

    let err = load(Some("offer_window = \"soon\""), &[], ServeFlags::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("offer_window = \"soon\" (from file orderflow.toml): duration must be"),
        "{err}"
    );

    let err = load(
        None,
        &[("ORDERFLOW_OFFER_FANOUT", "0")],
        ServeFlags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("offer_fanout = \"0\" (from env"), "{err}");

    let err = load(
        None,
        &[("ORDERFLOW_RESERVATION_TTL", "10m")],
        ServeFlags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("reservation_ttl (10m) must be longer"),
        "{err}"
    );

    let err = load(
        None,
        &[("ORDERFLOW_NATS_PREFIX", "Has.Dots")],
        ServeFlags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("nats_prefix = \"Has.Dots\""), "{err}");
}

#[test]
fn the_file_refuses_unknown_keys_and_wrong_types() {
    let err = load(Some("listne = \"x\""), &[], ServeFlags::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `listne`"), "{err}");
    let err = load(Some("offer_fanout = 1.5"), &[], ServeFlags::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`offer_fanout` must be a string or a whole number"),
        "{err}"
    );
    let err = load(Some("listen = "), &[], ServeFlags::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config file orderflow.toml:"), "{err}");
}

#[test]
fn secrets_never_appear_in_errors_or_the_printed_configuration() {
    let err = load(
        None,
        &[("ORDERFLOW_JWT_SECRET", "short-secret")],
        ServeFlags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("short-secret"), "{err}");
    assert!(err.starts_with("jwt_secret = (hidden)"), "{err}");

    let c = load(
        None,
        &[
            ("ORDERFLOW_DATABASE_URL", "postgres://u:hunter2@db/of"),
            ("ORDERFLOW_NATS_URL", "nats://n:natspw@nats:4222"),
            ("ORDERFLOW_JWT_SECRET", SECRET),
        ],
        ServeFlags::default(),
    )
    .unwrap();
    let printed = c.to_string();
    for secret in ["hunter2", "natspw", SECRET] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(printed.contains("postgres://u:***@db/of"), "{printed}");
    assert!(printed.contains("(set, hidden)"), "{printed}");
}

#[test]
fn an_empty_value_counts_as_unset() {
    let c = load(
        None,
        &[("ORDERFLOW_DATABASE_URL", "")],
        ServeFlags::default(),
    )
    .unwrap();
    assert!(c.embedded());
}
