//! Identifiers, amounts and instants as newtypes with parsing constructors.
//!
//! Each constructor returns the rule that was broken as a `&'static str`; the caller adds the
//! field path, so every refusal names both.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An institution or organisation code: 2-16 of A-Z, 0-9 and '-'.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstitutionCode(String);

impl InstitutionCode {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("is required");
        }
        if s.len() < 2 || s.len() > 16 {
            return Err("must be 2-16 characters");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("must use only A-Z, 0-9 and '-'");
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account number: 6-32 ASCII digits. Full-width digits are refused, not converted, so
/// that what is stored is exactly what the institution will match against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountNumber(String);

impl AccountNumber {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("is required");
        }
        if s.chars().any(|c| ('\u{FF10}'..='\u{FF19}').contains(&c)) {
            return Err("must use ASCII digits 0-9 (full-width digits are not accepted)");
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be digits only");
        }
        if s.len() < 6 || s.len() > 32 {
            return Err("must be 6-32 digits");
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// For logs: the last four digits only.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks all but the last four characters, for logs.
pub fn mask(s: &str) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

/// An amount of money in fen (1 yuan = 100 fen). Always > 0 once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fen(i64);

impl Fen {
    /// A positive amount at most `max`.
    pub fn parse_positive(v: i64, max: i64) -> Result<Self, String> {
        if v <= 0 {
            return Err("must be > 0 (an integer number of fen)".into());
        }
        if v > max {
            return Err(format!(
                "must be <= {max} fen (the hub's configured maximum)"
            ));
        }
        Ok(Self(v))
    }
    /// Zero or more, at most `max`, for balances.
    pub fn parse_non_negative(v: i64, max: i64) -> Result<Self, String> {
        if v < 0 {
            return Err("must be >= 0 (an integer number of fen)".into());
        }
        if v > max {
            return Err(format!(
                "must be <= {max} fen (the hub's configured maximum)"
            ));
        }
        Ok(Self(v))
    }
    pub const fn new_unchecked(v: i64) -> Self {
        Self(v)
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// An instant, milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// Checks a free-text field: required or optional, at most `max` characters, no control
/// characters. Returns the trimmed text.
pub fn text(s: &str, required: bool, max: usize) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return if required {
            Err("is required".into())
        } else {
            Ok(String::new())
        };
    }
    if t.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_owned())
}

/// A client-chosen request id: 1-64 of A-Z a-z 0-9 '-' '_' '.' ':'.
pub fn request_id(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        return Err("is required");
    }
    if s.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err("must use only A-Z, a-z, 0-9, '-', '_', '.' and ':'");
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers() {
        assert!(AccountNumber::parse("622202123456").is_ok());
        assert!(AccountNumber::parse("12345").is_err());
        assert!(AccountNumber::parse(&"1".repeat(33)).is_err());
        assert!(AccountNumber::parse("62220a123456").is_err());
        assert!(
            AccountNumber::parse("６２２２０２１２３４５６")
                .unwrap_err()
                .contains("full-width")
        );
        assert_eq!(
            AccountNumber::parse("622202123456").unwrap().masked(),
            "********3456"
        );
    }

    #[test]
    fn amounts() {
        assert!(Fen::parse_positive(0, 100).is_err());
        assert!(Fen::parse_positive(-1, 100).is_err());
        assert!(Fen::parse_positive(101, 100).is_err());
        assert_eq!(Fen::parse_positive(100, 100).unwrap().get(), 100);
        assert!(Fen::parse_non_negative(0, 100).is_ok());
    }

    #[test]
    fn codes_and_text() {
        assert!(InstitutionCode::parse("ICBC").is_ok());
        assert!(InstitutionCode::parse("icbc").is_err());
        assert!(InstitutionCode::parse("I").is_err());
        assert_eq!(text("  a b ", true, 5).unwrap(), "a b");
        assert!(text("", true, 5).is_err());
        assert!(text("abcdef", true, 5).is_err());
        assert!(text("a\u{0}b", true, 5).is_err());
        assert!(request_id("req-1:2").is_ok());
        assert!(request_id("req 1").is_err());
    }
}
