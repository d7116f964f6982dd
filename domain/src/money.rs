//! Money: an ISO 4217 currency and an integer count of its minor unit (fen for CNY).
//!
//! Never a float. Arithmetic is checked: mixing currencies or overflowing is an error the
//! caller must handle, never a wrapped or rounded amount.

use serde::{Deserialize, Serialize};

use crate::refusal::{Refusal, RefusalKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency_code must be 3 uppercase letters (ISO 4217), got {0:?}")]
    BadCurrency(String),
    #[error("currencies differ: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount overflows")]
    Overflow,
}

impl Refusal for MoneyError {
    fn kind(&self) -> RefusalKind {
        RefusalKind::InvalidArgument
    }
}

/// A currency code: three ASCII uppercase letters. Whether the code is assigned by ISO is
/// the payment provider's business; its shape is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(MoneyError::BadCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters get in.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(code: String) -> Result<Self, MoneyError> {
        Currency::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units. Any sign: prices and totals are checked to be positive where the
/// rule is (dish prices, compensation), not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    currency_code: Currency,
    minor_units: i64,
}

impl Money {
    pub fn new(currency: Currency, minor_units: i64) -> Self {
        Money {
            currency_code: currency,
            minor_units,
        }
    }

    /// From the contract's `Money { currency_code, minor_units }`.
    pub fn parse(currency_code: &str, minor_units: i64) -> Result<Self, MoneyError> {
        Ok(Money::new(Currency::parse(currency_code)?, minor_units))
    }

    pub fn zero(currency: Currency) -> Self {
        Money::new(currency, 0)
    }

    pub fn currency(&self) -> Currency {
        self.currency_code
    }

    pub fn minor_units(&self) -> i64 {
        self.minor_units
    }

    pub fn is_positive(&self) -> bool {
        self.minor_units > 0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .minor_units
            .checked_add(other.minor_units)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(self.currency_code, sum))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let diff = self
            .minor_units
            .checked_sub(other.minor_units)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(self.currency_code, diff))
    }

    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let product = self
            .minor_units
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(self.currency_code, product))
    }

    /// Compares two amounts of the same currency; other currencies do not compare.
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(*other)?;
        Ok(self.minor_units.cmp(&other.minor_units))
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency_code == other.currency_code {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency_code,
                right: other.currency_code,
            })
        }
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.minor_units, self.currency_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> Money {
        Money::parse("CNY", minor).unwrap()
    }

    #[test]
    fn currency_codes_are_three_uppercase_letters() {
        assert!(Currency::parse("CNY").is_ok());
        for bad in ["cny", "CN", "CNYY", "C1Y", "", "ÇNY"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Currency::parse("usd").unwrap_err().to_string(),
            "currency_code must be 3 uppercase letters (ISO 4217), got \"usd\""
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(cny(250).checked_add(cny(50)).unwrap(), cny(300));
        assert_eq!(cny(250).checked_mul(3).unwrap(), cny(750));
        assert_eq!(cny(i64::MAX).checked_add(cny(1)), Err(MoneyError::Overflow));
        assert_eq!(cny(i64::MAX).checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(cny(i64::MIN).checked_sub(cny(1)), Err(MoneyError::Overflow));
        let usd = Money::parse("USD", 1).unwrap();
        assert!(matches!(
            cny(1).checked_add(usd),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(cny(1).checked_cmp(&usd).is_err());
    }

    #[test]
    fn money_serializes_as_the_contract_does() {
        let json = serde_json::to_value(cny(1234)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"currency_code": "CNY", "minor_units": 1234})
        );
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), cny(1234));
        let bad = serde_json::json!({"currency_code": "cny", "minor_units": 1});
        assert!(serde_json::from_value::<Money>(bad).is_err());
    }
}
