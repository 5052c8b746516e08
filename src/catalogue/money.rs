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

/// An amount on input: a decimal string, no sign, exponent or leading zero.
pub const AMOUNT_PATTERN: &str = "^(?:0|[1-9][0-9]{0,17})(?:\\.[0-9]{1,8})?$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error(
        "must be a plain decimal like \"1000\" or \"12.50\" (no sign, exponent, leading zero or spaces)"
    )]
    NotDecimal,
    #[error("has more than {MAX_INTEGER_DIGITS} integer digits")]
    TooLarge,
    #[error("has more than {MAX_FRACTION_DIGITS} decimal places")]
    TooPrecise,
    #[error("must be a decimal string, like \"12.50\" (a JSON number is not exact)")]
    Float,
}

/// A non-negative decimal read exactly from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl Amount {
    /// A decimal string: `0` or digits not starting with `0`, at most 18 of them, and up
    /// to 8 decimals ([`AMOUNT_PATTERN`]).
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer)
            || fraction.is_some_and(|f| !all_digits(f))
            || (integer.len() > 1 && integer.starts_with('0'))
        {
            return Err(AmountError::NotDecimal);
        }
        if integer.len() > MAX_INTEGER_DIGITS {
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

/// A JSON string's text, or a number's literal as written (serde_json's
/// `arbitrary_precision`).
enum Literal {
    Text(String),
    Number(String),
}

struct ExactText;

impl<'de> Visitor<'de> for ExactText {
    type Value = Literal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string or the number 1e100")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Literal, E> {
        Ok(Literal::Text(v.to_owned()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Literal, E> {
        Ok(Literal::Number(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Literal, E> {
        Ok(Literal::Number(v.to_string()))
    }

    // Only when the exact text is unknown (not through serde_json's arbitrary precision).
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Literal, E> {
        if v == 1e100 {
            return Ok(Literal::Number(FULL_WITHDRAWAL.to_owned()));
        }
        Ok(Literal::Number(v.to_string()))
    }

    // serde_json hands an arbitrary-precision number over as a one-entry map.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Literal, A::Error> {
        let number = serde_json::Number::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Literal::Number(number.to_string()))
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(DecimalString)?;
        Amount::parse(&text).map_err(de::Error::custom)
    }
}

/// A decimal string; a JSON number is refused with a message saying why.
struct DecimalString;

impl<'de> Visitor<'de> for DecimalString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(E::custom(AmountError::Float))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(E::custom(AmountError::Float))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(E::custom(AmountError::Float))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom(AmountError::Float))
    }
}

impl JsonSchema for Amount {
    fn schema_name() -> Cow<'static, str> {
        "Amount".into()
    }

    // Sent as a decimal string; events carry it as a JSON number with the same digits.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        if generator.contract().is_serialize() {
            return json_schema!({
                "description": "An exact non-negative decimal: a JSON number, digit for digit.",
                "type": "number",
                "minimum": 0
            });
        }
        json_schema!({
            "description": "An exact non-negative decimal, as a string.",
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "examples": ["1000", "12.50"]
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
        use iso_currency::IntoEnumIterator;
        let codes: Vec<&str> = iso_currency::Currency::iter().map(|c| c.code()).collect();
        json_schema!({
            "description": "ISO 4217 alphabetic currency code.",
            "type": "string",
            "enum": codes,
            "examples": ["EUR", "USD"]
        })
    }
}

/// The rule for a deposit's amount in a currency whose minor unit has `digits` decimals: a
/// decimal string greater than zero, without a leading zero, with at most 18 integer digits
/// and 8 decimals, of which only the first `digits` may be other than zero. The same pattern
/// is the contract's schema and the server's check.
pub fn deposit_amount_pattern(digits: u32) -> String {
    let digits = digits.min(MAX_FRACTION_DIGITS as u32) as usize;
    let integer = format!("[1-9][0-9]{{0,{}}}", MAX_INTEGER_DIGITS - 1);
    let zeros = MAX_FRACTION_DIGITS - digits;
    if digits == 0 {
        return format!("^{integer}(?:\\.0{{1,{MAX_FRACTION_DIGITS}}})?$");
    }
    let fraction = format!("[0-9]{{1,{digits}}}0{{0,{zeros}}}");
    // Below one: the first non-zero decimal is one of the first `digits`.
    let below_one: Vec<String> = (0..digits)
        .map(|leading| {
            let rest = digits - 1 - leading;
            format!("0{{{leading}}}[1-9][0-9]{{0,{rest}}}0{{0,{zeros}}}")
        })
        .collect();
    format!(
        "^(?:{integer}(?:\\.{fraction})?|0\\.(?:{}))$",
        below_one.join("|")
    )
}

/// The currencies a deposit may be in, by the decimals of their minor unit (ISO 4217 codes
/// without one, such as XAU, cannot be deposited).
pub fn deposit_currencies() -> std::collections::BTreeMap<u32, Vec<&'static str>> {
    use iso_currency::IntoEnumIterator;
    let mut by_digits: std::collections::BTreeMap<u32, Vec<&'static str>> = Default::default();
    for currency in iso_currency::Currency::iter() {
        if let Some(digits) = currency.exponent() {
            by_digits
                .entry(u32::from(digits))
                .or_default()
                .push(currency.code());
        }
    }
    by_digits
}

/// Checks a deposit's amount text against its currency's rule.
pub fn check_deposit_amount(text: &str, currency: Currency) -> Result<Amount, &'static str> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};
    static RULES: LazyLock<Mutex<HashMap<u32, regex_lite::Regex>>> =
        LazyLock::new(Default::default);
    let digits = currency
        .minor_unit_digits()
        .ok_or("this currency has no minor unit and cannot be deposited")?;
    let mut rules = RULES.lock().unwrap_or_else(PoisonError::into_inner);
    let rule = rules.entry(digits).or_insert_with(|| {
        // Built from constants by `deposit_amount_pattern`; its tests compile every one.
        regex_lite::Regex::new(&deposit_amount_pattern(digits))
            .unwrap_or_else(|err| panic!("deposit amount pattern for {digits} decimals: {err}"))
    });
    if !rule.is_match(text) {
        return Err(
            "must be a decimal string greater than 0, like \"1000\" or \"12.50\", without more decimals than the currency's minor unit (a leading zero only before the point)",
        );
    }
    Amount::parse(text).map_err(|_| "not an exact decimal")
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
    /// A decimal string, or `1e100` (the string, or the JSON number in any of its spellings).
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        if text == FULL_WITHDRAWAL {
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
        match deserializer.deserialize_any(ExactText)? {
            Literal::Text(text) => DivestAmount::parse(&text).map_err(de::Error::custom),
            Literal::Number(number)
                if matches!(number.as_str(), "1e100" | "1E100" | "1e+100" | "1E+100") =>
            {
                Ok(Self::Full)
            }
            Literal::Number(_) => Err(de::Error::custom(AmountError::Float)),
        }
    }
}

impl JsonSchema for DivestAmount {
    fn schema_name() -> Cow<'static, str> {
        "DivestAmount".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        if generator.contract().is_serialize() {
            return json_schema!({
                "description": "Total amount requested for withdrawal, exact, as a JSON number; 1e100 means a full withdrawal.",
                "type": "number",
                "minimum": 0,
                "examples": [1.234, 1e100]
            });
        }
        json_schema!({
            "description": "Total amount requested for withdrawal: a decimal string; 1e100 (the number, or the string \"1e100\") means a full withdrawal.",
            "anyOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN},
                {"type": "string", "const": FULL_WITHDRAWAL},
                {"type": "number", "const": 1e100}
            ],
            "examples": ["1.234", 1e100]
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
    fn amounts_are_decimal_strings_written_back_as_number_literals() {
        let amount: Amount = serde_json::from_str("\"1000.50\"").unwrap();
        assert_eq!(amount.to_string(), "1000.50");
        assert_eq!(serde_json::to_string(&amount).unwrap(), "1000.50");
        for number in ["1000.50", "0.1", "1e3", "500"] {
            assert!(serde_json::from_str::<Amount>(number).is_err(), "{number}");
        }
        assert!(
            serde_json::from_str::<Amount>("\"007\"").is_err(),
            "no leading zero"
        );
    }

    #[test]
    fn full_withdrawal_round_trips_as_1e100() {
        for full in ["1e100", "1E+100", "\"1e100\""] {
            let parsed: DivestAmount = serde_json::from_str(full).unwrap();
            assert_eq!(parsed, DivestAmount::Full, "{full}");
            assert_eq!(serde_json::to_string(&parsed).unwrap(), "1e100");
        }
        let partial: DivestAmount = serde_json::from_str("\"1.234\"").unwrap();
        assert_eq!(serde_json::to_string(&partial).unwrap(), "1.234");
        assert!(
            serde_json::from_str::<DivestAmount>("1.234").is_err(),
            "numbers: only 1e100"
        );
    }

    #[test]
    fn deposit_amounts_follow_their_currency_rule() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        for ok in [
            "1000",
            "12.50",
            "12.5",
            "0.01",
            "0.10",
            "1.50000000",
            "999999999999999999",
        ] {
            assert!(check_deposit_amount(ok, usd).is_ok(), "{ok}");
        }
        for bad in [
            "0",
            "0.00",
            "0.001",
            "1.005",
            "007",
            "-1",
            "1e3",
            "",
            "1.",
            ".5",
            "1.123456789",
        ] {
            assert!(check_deposit_amount(bad, usd).is_err(), "{bad}");
        }
        assert!(check_deposit_amount("5", jpy).is_ok());
        assert!(check_deposit_amount("5.0", jpy).is_ok());
        assert!(check_deposit_amount("5.5", jpy).is_err());
        for digits in 0..=8 {
            regex_lite::Regex::new(&deposit_amount_pattern(digits)).unwrap();
        }
        assert!(deposit_currencies()[&2].contains(&"EUR"));
        assert!(
            !deposit_currencies()
                .values()
                .flatten()
                .any(|code| *code == "XAU")
        );
    }

    #[test]
    fn currencies_are_iso_4217_with_minor_units() {
        assert_eq!(Currency::parse("EUR").unwrap().minor_unit_digits(), Some(2));
        assert_eq!(Currency::parse("JPY").unwrap().minor_unit_digits(), Some(0));
        assert!(Currency::parse("eur").is_none());
        assert!(Currency::parse("ABC").is_none());
    }
}
