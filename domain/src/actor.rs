//! Who did something: a role and the subject of their token.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Buyer,
    Merchant,
    Rider,
    Ops,
    Admin,
    /// Other systems: the payment provider's callback, and orderflow's own process managers.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Merchant => "merchant",
            Role::Rider => "rider",
            Role::Ops => "ops",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "buyer" => Role::Buyer,
            "merchant" => Role::Merchant,
            "rider" => Role::Rider,
            "ops" => Role::Ops,
            "admin" => Role::Admin,
            "service" => Role::Service,
            other => return Err(UnknownRole(other.to_owned())),
        })
    }
}

/// The authenticated caller of a command, recorded in every event's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub role: Role,
    /// The token's `sub`: a buyer, merchant or rider id in decimal, or a service name.
    pub subject: String,
}

impl Actor {
    pub fn new(role: Role, subject: impl Into<String>) -> Self {
        Actor {
            role,
            subject: subject.into(),
        }
    }

    /// orderflow's own process managers (sagas, deadlines, reaper).
    pub fn system(component: &str) -> Self {
        Actor::new(Role::Service, format!("orderflow:{component}"))
    }
}
