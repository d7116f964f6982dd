//! The raw layers: each key's winning string and where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{is_business_key, key_named, ConfigError, KEYS};

/// Where a value came from, for start-up output and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Defaults < file < environment < flags, merged key by key.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    /// `flags` are `(key name, value given)`; an empty value at any layer counts as unset, so
    /// `ORDERFLOW_DATABASE_URL=` in a container file does not select a database named "".
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(&'static str, Option<String>)],
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Self::from_sources(text.as_deref().zip(file), env, flags)
    }

    /// As [`Layers::load`], with the file's text already read.
    pub fn from_sources(
        file: Option<(&str, &Path)>,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(&'static str, Option<String>)],
    ) -> Result<Self, ConfigError> {
        let mut layers = Layers::defaults();
        if let Some((text, path)) = file {
            layers.merge_file(text, path)?;
        }
        for key in KEYS {
            if let Some(value) = env(key.env) {
                layers.set(key.name, value, Source::Env(key.env));
            }
        }
        for (name, value) in flags {
            let key = key_named(name).expect("every flag is a key");
            if let Some(value) = value {
                let flag = key.flag.expect("a key given as a flag has one");
                layers.set(key.name, value.clone(), Source::Flag(flag));
            }
        }
        Ok(layers)
    }

    fn defaults() -> Self {
        let mut layers = Layers::default();
        for key in KEYS.iter().filter(|k| !is_business_key(k.name)) {
            if let Some(default) = key.default {
                layers.set(key.name, default.to_owned(), Source::Default);
            }
        }
        layers
    }

    /// A flat TOML table of keys: strings, or integers for the numeric ones.
    fn merge_file(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.to_owned(),
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
        for (name, value) in table {
            let key = key_named(&name).ok_or_else(|| {
                let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
                file_error(format!(
                    "unknown key `{name}` (known: {})",
                    known.join(", ")
                ))
            })?;
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                other => {
                    return Err(file_error(format!(
                        "`{name}` must be a string or a whole number, got a {}",
                        other.type_str()
                    )))
                }
            };
            self.set(key.name, value, Source::File(path.to_owned()));
        }
        Ok(())
    }

    fn set(&mut self, name: &'static str, value: String, source: Source) {
        if !value.trim().is_empty() {
            self.values.insert(name, (value, source));
        }
    }

    pub fn get(&self, name: &str) -> Option<(&str, &Source)> {
        self.values
            .get(name)
            .map(|(value, source)| (value.as_str(), source))
    }

    /// The key's value parsed with `parse`, `None` when no layer sets it.
    pub fn parse<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((value, source)) = self.get(name) else {
            return Ok(None);
        };
        parse(value)
            .map(Some)
            .map_err(|reason| self.invalid(name, value, source, reason))
    }

    fn invalid(
        &self,
        name: &'static str,
        value: &str,
        source: &Source,
        reason: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            key: name,
            value: shown(name, value),
            origin: source.clone(),
            reason,
        }
    }

    /// The command side's error about a business timing, told with the key and its source.
    pub fn business_error(&self, e: orderflow_command_service::config::ConfigError) -> ConfigError {
        use orderflow_command_service::config::ConfigError as Business;
        let env_name = match &e {
            Business::Duration { name, .. } | Business::Number { name, .. } => *name,
            Business::Invalid(message) => return ConfigError::Inconsistent(message.clone()),
        };
        let Some(key) = KEYS.iter().find(|k| k.env == env_name) else {
            return ConfigError::Inconsistent(e.to_string());
        };
        let (value, source) = self
            .get(key.name)
            .map_or((String::new(), Source::Default), |(v, s)| {
                (v.to_owned(), s.clone())
            });
        let reason = match e {
            Business::Duration { source, .. } => source.to_string(),
            Business::Number { min, max, .. } => format!("must be a whole number in {min}..={max}"),
            Business::Invalid(_) => unreachable!("returned above"),
        };
        self.invalid(key.name, &value, &source, reason)
    }
}

/// A value as it may appear in an error: never the secret, never a password.
fn shown(name: &str, value: &str) -> String {
    match name {
        "jwt_secret" => "(hidden)".to_owned(),
        "database_url" | "nats_url" | "shard_map" => {
            format!("{:?}", orderflow::redact::redact_map(value))
        }
        _ => format!("{value:?}"),
    }
}
