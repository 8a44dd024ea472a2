//! Wrappers for personal data and secrets whose `Debug` never shows the value.
//!
//! A name, a birth date or a token that reaches a log line is a data-protection incident. These types
//! make the safe thing the default: `{:?}` prints `PersonName(<redacted>)`, there is no `Display`, and
//! reading the value takes an explicit call (`as_str()`, `get()`, `expose_secret()`) that stands out in review.
//! On the wire they are plain strings (`#[serde(transparent)]`).

use std::fmt;

pub use secrecy::ExposeSecret;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::Date;

/// What every redacting `Debug` prints in place of a value.
pub(crate) const REDACTED: &str = "<redacted>";

/// Prints `<redacted>` or `None`, for hand-written `Debug` impls of structs with free-text fields.
pub(crate) struct RedactedOption(pub(crate) bool);

impl fmt::Debug for RedactedOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 {
            write!(f, "Some({REDACTED})")
        } else {
            f.write_str("None")
        }
    }
}

/// Shorthand for a hand-written `Debug` field that hides an optional free text.
pub(crate) fn redact_option<T>(value: &Option<T>) -> RedactedOption {
    RedactedOption(value.is_some())
}

macro_rules! redacted_debug {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), REDACTED)
            }
        }
    };
}

/// A family or given name of a patient; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, examples("MARTIN"), description = "A family or given name, as in the INS referential."))]
pub struct PersonName(String);

redacted_debug!(PersonName);

impl PersonName {
    /// Wraps a name as received from the source of truth (no normalisation: INS traits are kept as is).
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name itself; keep it out of logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives the inner string back, e.g. to store it.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl From<String> for PersonName {
    fn from(name: String) -> Self {
        Self(name)
    }
}

/// A patient's birth date, `YYYY-MM-DD` on the wire; `Debug` redacts it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, examples("1984-06-30"), description = "Birth date, `YYYY-MM-DD`."))]
pub struct BirthDate(#[serde(with = "crate::serde_date")] Date);

redacted_debug!(BirthDate);

impl BirthDate {
    /// Wraps a date.
    pub fn new(date: Date) -> Self {
        Self(date)
    }

    /// The date itself; keep it out of logs.
    pub fn get(self) -> Date {
        self.0
    }
}

impl From<Date> for BirthDate {
    fn from(date: Date) -> Self {
        Self(date)
    }
}

/// A phone number as stored (E.164 preferred, national format tolerated); `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, examples("+33612345678"), description = "Phone number, E.164 preferred (national format tolerated)."))]
pub struct PhoneNumber(String);

redacted_debug!(PhoneNumber);

impl PhoneNumber {
    /// Wraps a phone number.
    pub fn new(number: impl Into<String>) -> Self {
        Self(number.into())
    }

    /// The number itself; keep it out of logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives the inner string back.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl From<String> for PhoneNumber {
    fn from(number: String) -> Self {
        Self(number)
    }
}

/// A postal address (patient's home, or where a home visit takes place); `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A postal address: the patient's home, or where a home visit takes place.")
)]
pub struct Address {
    /// Street line, possibly with building and floor ("12 rue des Lilas, bât. B").
    pub line: String,
    /// Postal code (5 digits in France).
    pub postal_code: String,
    /// City or town.
    pub city: String,
}

redacted_debug!(Address);

impl Address {
    /// Builds an address from its three lines.
    pub fn new(line: impl Into<String>, postal_code: impl Into<String>, city: impl Into<String>) -> Self {
        Self {
            line: line.into(),
            postal_code: postal_code.into(),
            city: city.into(),
        }
    }
}

/// A credential: access or refresh token, PIN, device secret; `Debug` redacts it.
///
/// Held in a [`secrecy::SecretString`]: wiped from memory when dropped, read only through
/// [`ExposeSecret`]. On the wire it is the plain string.
///
/// No `PartialEq` on purpose: a server must compare credentials through their hash in constant time,
/// never with `==` on the clear value.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, description = "A credential (token, PIN, device secret): keep it in the platform keystore, never in logs."))]
pub struct Secret(SecretString);

redacted_debug!(Secret);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into())
    }

    /// The clear value, for hashing or sending; the name makes every use visible in review (as
    /// [`ExposeSecret`], without the import).
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Gives the clear value back.
    pub fn into_exposed(self) -> String {
        self.expose_secret().to_owned()
    }
}

impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// The tablet receives its tokens and device secret in the clear: that is what they are for.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn debug_never_shows_values() {
        let name = PersonName::new("Dupont-Sensible");
        let birth = BirthDate::new(date!(1961 - 03 - 17));
        let phone = PhoneNumber::new("+33698765432");
        let address = Address::new("7 impasse Verte", "75011", "Parisville");
        let secret = Secret::new("s3cr3t-token-value");

        assert_eq!(format!("{name:?}"), "PersonName(<redacted>)");
        assert_eq!(format!("{birth:?}"), "BirthDate(<redacted>)");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(<redacted>)");
        assert_eq!(format!("{address:?}"), "Address(<redacted>)");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let pretty = format!("{name:#?} {birth:#?} {phone:#?} {address:#?} {secret:#?}");
        for leaked in ["Dupont", "1961", "98765", "Verte", "75011", "Parisville", "s3cr3t"] {
            assert!(!pretty.contains(leaked), "{leaked} leaked in {pretty}");
        }
    }

    #[test]
    fn wire_form_is_the_plain_value() {
        let json = serde_json::json!({
            "name": PersonName::new("Martin"),
            "birth": BirthDate::new(date!(2001 - 12 - 03)),
            "phone": PhoneNumber::new("0601020304"),
            "secret": Secret::new("abc"),
        });
        assert_eq!(
            json,
            serde_json::json!({
                "name": "Martin", "birth": "2001-12-03", "phone": "0601020304", "secret": "abc"
            })
        );
        let birth: BirthDate = serde_json::from_str(r#""2001-12-03""#).expect("birth date");
        assert_eq!(birth.get(), date!(2001 - 12 - 03));
        let secret: Secret = serde_json::from_str(r#""xyz""#).expect("secret");
        assert_eq!(secret.expose_secret(), "xyz");
    }

    #[test]
    fn redacted_option_shows_presence_only() {
        assert_eq!(
            format!("{:?}", redact_option(&Some("door code 1234"))),
            "Some(<redacted>)"
        );
        assert_eq!(format!("{:?}", redact_option::<String>(&None)), "None");
    }
}
