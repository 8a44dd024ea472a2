//! Validation rules shared by the request types.
//!
//! The derive-generated checks of `validator` copy the submitted value into the error's `params`.
//! That is harmless for a tube type, not for a PIN: requests carrying credentials or search terms are
//! therefore checked by hand-written `Validate` impls built from these helpers, which record only the
//! rule that failed.

use std::borrow::Cow;

use uuid::Uuid;
use validator::{ValidationError, ValidationErrors};

/// An error with a code and a fixed message, and no copy of the value.
pub(crate) fn fail(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Borrowed(message))
}

/// `Ok` when `ok`, else [`fail`].
pub(crate) fn ensure(ok: bool, code: &'static str, message: &'static str) -> Result<(), ValidationError> {
    if ok { Ok(()) } else { Err(fail(code, message)) }
}

/// Length in characters, as validator's `length` rule counts.
pub(crate) fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// Collects field errors for hand-written `Validate` impls.
#[derive(Debug, Default)]
pub(crate) struct Checks(ValidationErrors);

impl Checks {
    /// Records the outcome of one rule on `field`.
    pub(crate) fn field(&mut self, field: &'static str, outcome: Result<(), ValidationError>) -> &mut Self {
        if let Err(error) = outcome {
            self.0.add(field, error);
        }
        self
    }

    /// The errors, if any.
    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Client-made ids must be real ids: the nil UUID is always a tablet bug.
pub(crate) fn not_nil(id: &Uuid) -> Result<(), ValidationError> {
    ensure(!id.is_nil(), "nil_uuid", "must not be the nil UUID")
}

/// Staff login: 3 to 32 characters among a-z, 0-9, '.', '_' and '-'.
pub(crate) fn login(text: &str) -> Result<(), ValidationError> {
    let shape = (3..=32).contains(&char_len(text))
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    ensure(
        shape,
        "login",
        "must be 3 to 32 characters among a-z, 0-9, '.', '_' and '-'",
    )
}

/// PIN: 4 to 12 digits.
pub(crate) fn pin(text: &str) -> Result<(), ValidationError> {
    let shape = (4..=12).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    ensure(shape, "pin", "must be 4 to 12 digits")
}

/// Device secret as issued at enrollment: 16 to 128 printable ASCII characters.
pub(crate) fn device_secret(text: &str) -> Result<(), ValidationError> {
    let shape = (16..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    ensure(shape, "device_secret", "must be 16 to 128 printable ASCII characters")
}

/// Refresh token: 1 to 512 printable ASCII characters.
pub(crate) fn refresh_token(text: &str) -> Result<(), ValidationError> {
    let shape = (1..=512).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    ensure(shape, "refresh_token", "must be 1 to 512 printable ASCII characters")
}

/// Enrollment code: 6 to 12 characters among A-Z and 2-9 (no 0/O, 1/I confusion).
pub(crate) fn enrollment_code(text: &str) -> Result<(), ValidationError> {
    let shape = (6..=12).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'9').contains(&b));
    ensure(shape, "enrollment_code", "must be 6 to 12 characters among A-Z and 2-9")
}

/// Tube type code: 2 to 24 characters among A-Z, 0-9 and '_'.
pub(crate) fn tube_type(text: &str) -> Result<(), ValidationError> {
    let shape = (2..=24).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    ensure(shape, "tube_type", "must be 2 to 24 characters among A-Z, 0-9 and '_'")
}

/// validator's own `length` error, bounds only (the problem message is built from them).
pub(crate) fn length(min: usize, max: usize) -> ValidationError {
    let mut error = ValidationError::new("length");
    error.add_param(Cow::Borrowed("min"), &min);
    error.add_param(Cow::Borrowed("max"), &max);
    error
}

/// A one-line label: between `min` and `max` characters, no control character.
pub(crate) fn label(text: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    if !(min..=max).contains(&char_len(text)) {
        return Err(length(min, max));
    }
    ensure(
        !text.chars().any(char::is_control),
        "non_control_character",
        "must not contain control characters",
    )
}

/// Free text typed by staff: line breaks and tabs allowed, other control characters not.
pub(crate) fn free_text(text: &str) -> Result<(), ValidationError> {
    let clean = text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    ensure(
        clean,
        "non_control_character",
        "must not contain control characters other than line breaks and tabs",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(login("j.dupont_2-a").is_ok());
        assert!(login("JD").is_err());
        assert!(login("Jdupont").is_err());
        assert!(pin("0000").is_ok());
        assert!(pin("12a4").is_err());
        assert!(pin("1234567890123").is_err());
        assert!(enrollment_code("ABCD2345").is_ok());
        assert!(enrollment_code("ABCD0145").is_err());
        assert!(enrollment_code("abcd2345").is_err());
        assert!(tube_type("EDTA_4ML").is_ok());
        assert!(tube_type("edta").is_err());
        assert!(tube_type("E").is_err());
        assert!(device_secret(&"x".repeat(16)).is_ok());
        assert!(device_secret(&"x".repeat(15)).is_err());
        assert!(device_secret("with space inside!!").is_err());
        assert!(free_text("line 1\nline 2\ttab").is_ok());
        assert!(free_text("bell\u{7}").is_err());
        assert!(label("Tablette 3", 1, 64).is_ok());
        assert!(label("", 1, 64).is_err());
        assert!(label("two\nlines", 1, 64).is_err());
        assert!(not_nil(&Uuid::nil()).is_err());
    }

    #[test]
    fn errors_carry_no_value() {
        let error = pin("12ab").expect_err("bad pin");
        assert!(error.params.is_empty());
        assert!(!format!("{error:?}").contains("12ab"));
    }
}
