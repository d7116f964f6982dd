//! The command side's business timings, with the contract's defaults and environment names
//! (`shared/api/README.md`). The layered loading (file, env, flags) comes with `serve`; this
//! is the typed, validated result every part of the command side reads.

use std::time::Duration;

use orderflow_infra::duration::{format_duration, parse_duration, InvalidDuration};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    /// CREATED → CANCELLED if unpaid by then (`ORDERFLOW_PAYMENT_WINDOW`, 15m).
    pub payment_window: Duration,
    /// A reservation not deducted by then is settled by the reaper (`ORDERFLOW_RESERVATION_TTL`, 20m).
    pub reservation_ttl: Duration,
    /// NOTIFIED → PAID (re-offer) if nobody grabs (`ORDERFLOW_OFFER_WINDOW`, 30s).
    pub offer_window: Duration,
    /// First-round radius; each re-offer widens it (`ORDERFLOW_OFFER_RADIUS_M`, 3000).
    pub offer_radius_m: u32,
    /// Riders offered per round, nearest first (`ORDERFLOW_OFFER_FANOUT`, 5).
    pub offer_fanout: u32,
    /// Grab + SLA = delivery deadline (`ORDERFLOW_DELIVERY_SLA`, 30m).
    pub delivery_sla: Duration,
    /// On-time RECEIVED → CLOSED after this (`ORDERFLOW_CLOSE_AFTER`, 10m).
    pub close_after: Duration,
    /// Extension of the contract. Rounds offered at the normal window; the round after the
    /// last alerts ops and the order is offered on at the widest radius with a window that
    /// doubles per round (`ORDERFLOW_OFFER_MAX_ROUNDS`, 10; see docs/riders.md).
    pub offer_max_rounds: u32,
    /// Extension of the contract. Closed deadlines older than this are deleted
    /// (`ORDERFLOW_DEADLINE_RETENTION`, 168h).
    pub deadline_retention: Duration,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            payment_window: Duration::from_secs(15 * 60),
            reservation_ttl: Duration::from_secs(20 * 60),
            offer_window: Duration::from_secs(30),
            offer_radius_m: 3_000,
            offer_fanout: 5,
            delivery_sla: Duration::from_secs(30 * 60),
            close_after: Duration::from_secs(10 * 60),
            offer_max_rounds: 10,
            deadline_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {source}")]
    Duration {
        name: &'static str,
        source: InvalidDuration,
    },
    #[error("{name} must be a whole number in {min}..={max}, got {value:?}")]
    Number {
        name: &'static str,
        value: String,
        min: u32,
        max: u32,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CommandConfig {
    /// The defaults overridden by whichever `ORDERFLOW_*` variables `lookup` knows
    /// (`std::env::var` in the binary, a map in tests), then validated.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = CommandConfig::default();
        let duration = |name: &'static str, slot: &mut Duration| -> Result<(), ConfigError> {
            if let Some(v) = lookup(name) {
                *slot =
                    parse_duration(&v).map_err(|source| ConfigError::Duration { name, source })?;
            }
            Ok(())
        };
        duration("ORDERFLOW_PAYMENT_WINDOW", &mut c.payment_window)?;
        duration("ORDERFLOW_RESERVATION_TTL", &mut c.reservation_ttl)?;
        duration("ORDERFLOW_OFFER_WINDOW", &mut c.offer_window)?;
        duration("ORDERFLOW_DELIVERY_SLA", &mut c.delivery_sla)?;
        duration("ORDERFLOW_CLOSE_AFTER", &mut c.close_after)?;
        duration("ORDERFLOW_DEADLINE_RETENTION", &mut c.deadline_retention)?;
        let number =
            |name: &'static str, min: u32, max: u32, slot: &mut u32| -> Result<(), ConfigError> {
                if let Some(v) = lookup(name) {
                    *slot = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or(ConfigError::Number {
                            name,
                            value: v,
                            min,
                            max,
                        })?;
                }
                Ok(())
            };
        number("ORDERFLOW_OFFER_RADIUS_M", 1, 50_000, &mut c.offer_radius_m)?;
        number("ORDERFLOW_OFFER_FANOUT", 1, 200, &mut c.offer_fanout)?;
        number(
            "ORDERFLOW_OFFER_MAX_ROUNDS",
            1,
            1_000,
            &mut c.offer_max_rounds,
        )?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let windows = [
            ("payment_window", self.payment_window),
            ("reservation_ttl", self.reservation_ttl),
            ("offer_window", self.offer_window),
            ("delivery_sla", self.delivery_sla),
            ("close_after", self.close_after),
            ("deadline_retention", self.deadline_retention),
        ];
        if let Some((name, _)) = windows.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Invalid(format!(
                "{name} must be longer than 0"
            )));
        }
        // A reservation that could expire while the order may still be paid would let the
        // reaper release stock the buyer is about to pay for.
        if self.reservation_ttl <= self.payment_window {
            return Err(ConfigError::Invalid(format!(
                "reservation_ttl ({}) must be longer than payment_window ({})",
                format_duration(self.reservation_ttl),
                format_duration(self.payment_window)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_contracts() {
        assert_eq!(
            CommandConfig::from_lookup(lookup(&[])).unwrap(),
            CommandConfig::default()
        );
    }

    #[test]
    fn environment_overrides_and_is_validated() {
        let c = CommandConfig::from_lookup(lookup(&[
            ("ORDERFLOW_OFFER_WINDOW", "2s"),
            ("ORDERFLOW_OFFER_FANOUT", "3"),
            ("ORDERFLOW_OFFER_MAX_ROUNDS", "4"),
            ("ORDERFLOW_DEADLINE_RETENTION", "24h"),
        ]))
        .unwrap();
        assert_eq!(c.offer_max_rounds, 4);
        assert_eq!(c.deadline_retention, Duration::from_secs(24 * 3600));
        assert!(
            CommandConfig::from_lookup(lookup(&[("ORDERFLOW_OFFER_MAX_ROUNDS", "0")])).is_err()
        );
        assert_eq!(c.offer_window, Duration::from_secs(2));
        assert_eq!(c.offer_fanout, 3);
        assert!(CommandConfig::from_lookup(lookup(&[("ORDERFLOW_OFFER_WINDOW", "soon")])).is_err());
        assert!(CommandConfig::from_lookup(lookup(&[("ORDERFLOW_OFFER_RADIUS_M", "0")])).is_err());
        assert!(
            CommandConfig::from_lookup(lookup(&[("ORDERFLOW_RESERVATION_TTL", "10m")])).is_err()
        );
    }
}
