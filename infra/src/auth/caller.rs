//! Who is calling: the role and subject of a verified token, with the subject typed.

use orderflow_domain::{Actor, BuyerId, MerchantId, RiderId, Role};

use super::AuthError;

/// Longest subject accepted; it is recorded in every event's metadata.
pub const MAX_SUBJECT_CHARS: usize = 128;

/// An authenticated caller. Valid by construction: for buyers, merchants and riders the
/// subject is their id in decimal (> 0), so the typed accessors below cannot disagree with
/// the role; for ops, admin and service it is any printable name of 1..=128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    role: Role,
    subject: String,
}

impl Caller {
    pub fn new(role: Role, subject: impl Into<String>) -> Result<Self, AuthError> {
        let subject = subject.into();
        if subject.is_empty() {
            return Err(AuthError::MissingSubject);
        }
        let printable =
            subject.chars().count() <= MAX_SUBJECT_CHARS && !subject.chars().any(char::is_control);
        let id_ok = match role {
            Role::Buyer => BuyerId::parse(&subject).is_ok(),
            Role::Merchant => MerchantId::parse(&subject).is_ok(),
            Role::Rider => RiderId::parse(&subject).is_ok(),
            Role::Ops | Role::Admin | Role::Service => true,
        };
        if !(printable && id_ok) {
            return Err(AuthError::BadSubject { role });
        }
        Ok(Caller { role, subject })
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Who goes into the metadata of the events this caller's command appends.
    pub fn actor(&self) -> Actor {
        Actor::new(self.role, self.subject.clone())
    }

    /// The buyer this caller is, if it is one.
    pub fn buyer_id(&self) -> Option<BuyerId> {
        (self.role == Role::Buyer)
            .then(|| BuyerId::parse(&self.subject).ok())
            .flatten()
    }

    /// The merchant this caller is, if it is one.
    pub fn merchant_id(&self) -> Option<MerchantId> {
        (self.role == Role::Merchant)
            .then(|| MerchantId::parse(&self.subject).ok())
            .flatten()
    }

    /// The rider this caller is, if it is one.
    pub fn rider_id(&self) -> Option<RiderId> {
        (self.role == Role::Rider)
            .then(|| RiderId::parse(&self.subject).ok())
            .flatten()
    }
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Actor {
        c.actor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_roles_need_a_positive_decimal_subject() {
        for role in [Role::Buyer, Role::Merchant, Role::Rider] {
            assert!(Caller::new(role, "42").is_ok());
            for bad in ["0", "-1", "abc", "4 2", "99999999999999999999"] {
                assert_eq!(
                    Caller::new(role, bad),
                    Err(AuthError::BadSubject { role }),
                    "{bad}"
                );
            }
        }
        assert_eq!(Caller::new(Role::Buyer, ""), Err(AuthError::MissingSubject));
    }

    #[test]
    fn named_roles_need_a_printable_subject() {
        assert!(Caller::new(Role::Service, "payments:wechat").is_ok());
        assert!(Caller::new(Role::Ops, "alice@example.com").is_ok());
        assert!(Caller::new(Role::Admin, "x".repeat(MAX_SUBJECT_CHARS)).is_ok());
        assert!(Caller::new(Role::Admin, "x".repeat(MAX_SUBJECT_CHARS + 1)).is_err());
        assert!(Caller::new(Role::Ops, "a\nb").is_err());
    }

    #[test]
    fn typed_subjects_follow_the_role() {
        let buyer = Caller::new(Role::Buyer, "17").unwrap();
        assert_eq!(buyer.buyer_id(), Some(BuyerId::new(17).unwrap()));
        assert_eq!(buyer.merchant_id(), None);
        assert_eq!(buyer.rider_id(), None);
        let merchant = Caller::new(Role::Merchant, "7").unwrap();
        assert_eq!(merchant.merchant_id(), Some(MerchantId::new(7).unwrap()));
        assert_eq!(merchant.buyer_id(), None);
        let rider = Caller::new(Role::Rider, "42").unwrap();
        assert_eq!(rider.rider_id(), Some(RiderId::new(42).unwrap()));
        assert_eq!(Caller::new(Role::Ops, "17").unwrap().buyer_id(), None);
        assert_eq!(rider.actor(), Actor::new(Role::Rider, "42"));
    }
}
