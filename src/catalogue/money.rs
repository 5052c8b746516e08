//! Exact money on the wire: decimal amounts and ISO 4217 currency codes.
//!
//! Amounts arrive as decimal strings or JSON number literals and are read from their exact
//! text (serde_json's `arbitrary_precision`), never through a float. They are written back
//! as JSON number literals with the same digits, as the seed's events show them.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most integer digits an amount may have (well inside `Decimal`'s 28).
pub const MAX_INTEGER_DIGITS: usize = 18;
/// Most fractional digits an amount may have before currency rules apply.
pub const MAX_FRACTION_DIGITS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a plain decimal like \"1000\" or \"12.50\" (no sign, exponent or spaces)")]
    NotDecimal,
    #[error("has more than {MAX_INTEGER_DIGITS} integer digits")]
    TooLarge,
    #[error("has more than {MAX_FRACTION_DIGITS} decimal places")]
    TooPrecise,
    #[error("must be an exact decimal: send it as a string or an exact number literal")]
    Float,
}

/// A non-negative decimal read exactly from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl Amount {
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(AmountError::NotDecimal);
        }
        if integer.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
            return Err(AmountError::TooLarge);
        }
        if fraction.is_some_and(|f| f.len() > MAX_FRACTION_DIGITS) {
            return Err(AmountError::TooPrecise);
        }
        Decimal::from_str(text)
            .map(Self)
            .map_err(|_| AmountError::NotDecimal)
    }

    /// Decimal places as written (`"12.50"` has 2).
    pub fn scale(self) -> u32 {
        self.0.scale()
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Writes `text` as a JSON number literal, digit for digit (a `RawValue`, because
/// `serde_json::Number` would re-format `1e100` as `1e+100`).
pub fn serialize_number_literal<S: Serializer>(
    text: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde_json::value::RawValue::from_string(text.to_owned())
        .map_err(serde::ser::Error::custom)?
        .serialize(serializer)
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_number_literal(&self.0.to_string(), serializer)
    }
}

/// Reads the exact text of a JSON string or number; floats (which only reach us when the
/// exact text is unknown) are refused.
struct ExactText;

impl<'de> Visitor<'de> for ExactText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string or an exact number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    // With `arbitrary_precision`, serde_json only calls this when the literal is exactly the
    // shortest round-trip form of `v`, so that form gives back the written decimal value.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        if !v.is_finite() {
            return Err(E::custom(AmountError::Float));
        }
        if v == 1e100 {
            return Ok(FULL_WITHDRAWAL.to_owned());
        }
        Ok(v.to_string())
    }

    // serde_json hands an arbitrary-precision number over as a one-entry map.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
        let number = serde_json::Number::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(number.to_string())
    }
}

pub fn deserialize_exact_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    deserializer.deserialize_any(ExactText)
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserialize_exact_text(deserializer)?;
        Amount::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for Amount {
    fn schema_name() -> Cow<'static, str> {
        "Amount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An exact non-negative decimal: a JSON number literal or a decimal string.",
            "type": ["number", "string"],
            "pattern": "^[0-9]{1,18}(\\.[0-9]{1,8})?$",
            "minimum": 0
        })
    }
}

/// An ISO 4217 currency code such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(pub iso_currency::Currency);

impl Currency {
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Decimal places of the minor unit (EUR 2, JPY 0); `None` for codes without one (XAU).
    pub fn minor_unit_digits(self) -> Option<u32> {
        self.0.exponent().map(u32::from)
    }

    pub fn parse(code: &str) -> Option<Self> {
        iso_currency::Currency::from_code(code).map(Self)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).ok_or_else(|| {
            de::Error::custom(format!(
                "'{code}' is not an ISO 4217 currency code (e.g. EUR)"
            ))
        })
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "ISO 4217 alphabetic currency code.",
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "examples": ["EUR", "USD"]
        })
    }
}

/// The total amount requested for withdrawal; the seed's sentinel `1e100` means "all".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DivestAmount {
    Partial(Amount),
    Full,
}

/// The seed's full-withdrawal sentinel, written exactly like this on the wire.
pub const FULL_WITHDRAWAL: &str = "1e100";

impl DivestAmount {
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        if matches!(text, "1e100" | "1E100" | "1e+100" | "1E+100") {
            return Ok(Self::Full);
        }
        Amount::parse(text).map(Self::Partial)
    }

    /// The wire text: the exact decimal, or `1e100`.
    pub fn as_literal(&self) -> String {
        match self {
            Self::Partial(amount) => amount.to_string(),
            Self::Full => FULL_WITHDRAWAL.to_owned(),
        }
    }
}

impl Serialize for DivestAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_number_literal(&self.as_literal(), serializer)
    }
}

impl<'de> Deserialize<'de> for DivestAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserialize_exact_text(deserializer)?;
        DivestAmount::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for DivestAmount {
    fn schema_name() -> Cow<'static, str> {
        "DivestAmount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Total amount requested for withdrawal, exact; the number 1e100 means a full withdrawal.",
            "type": ["number", "string"],
            "examples": [1.234, 1e100]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_and_reject_everything_else() {
        assert_eq!(Amount::parse("1000").unwrap().to_string(), "1000");
        assert_eq!(Amount::parse("12.50").unwrap().scale(), 2);
        for bad in [
            "", "-5", "+5", "1e3", "abc", "1.", ".5", " 1", "1,5", "0x10",
        ] {
            assert_eq!(Amount::parse(bad), Err(AmountError::NotDecimal), "{bad:?}");
        }
        assert_eq!(Amount::parse(&"9".repeat(40)), Err(AmountError::TooLarge));
        assert_eq!(Amount::parse("1.123456789"), Err(AmountError::TooPrecise));
    }

    #[test]
    fn json_numbers_are_read_from_their_literal_text() {
        let amount: Amount = serde_json::from_str("1000.50").unwrap();
        assert_eq!(amount.to_string(), "1000.50");
        assert_eq!(serde_json::to_string(&amount).unwrap(), "1000.50");
        let from_value: Amount = serde_json::from_value(serde_json::json!(0.1)).unwrap();
        assert_eq!(from_value.to_string(), "0.1");
        assert!(serde_json::from_str::<Amount>("1e3").is_err());
    }

    #[test]
    fn full_withdrawal_round_trips_as_1e100() {
        let full: DivestAmount = serde_json::from_str("1e100").unwrap();
        assert_eq!(full, DivestAmount::Full);
        assert_eq!(serde_json::to_string(&full).unwrap(), "1e100");
        let partial: DivestAmount = serde_json::from_str("1.234").unwrap();
        assert_eq!(serde_json::to_string(&partial).unwrap(), "1.234");
    }

    #[test]
    fn currencies_are_iso_4217_with_minor_units() {
        assert_eq!(Currency::parse("EUR").unwrap().minor_unit_digits(), Some(2));
        assert_eq!(Currency::parse("JPY").unwrap().minor_unit_digits(), Some(0));
        assert!(Currency::parse("eur").is_none());
        assert!(Currency::parse("ABC").is_none());
    }
}
