//! The French social-security number (NIR), which is also the INS matricule.
//!
//! Layout of the 15 characters: sex (1), year of birth (2), month of birth (2), department (2, with
//! `2A`/`2B` for Corsica), commune (3), order number (3), control key (2). The key is
//! `97 - (n mod 97)` where `n` is the first 13 characters read as a number, Corsican `2A` counting
//! as `19` and `2B` as `18`.
//!
//! A [`Nir`] only exists once [`Nir::parse`] has checked all of that, so code holding one never
//! re-validates. Errors name the rule that failed and never repeat the input, which is personal data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::common::Sex;

/// Why a string is not a NIR; the message never contains the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NirError {
    /// Not 15 characters once spaces are removed.
    #[error("a NIR has 15 characters (13 plus a 2-digit key), found {found}")]
    Length {
        /// How many characters were found (not which).
        found: usize,
    },
    /// A character other than a digit where only digits are allowed.
    #[error("a NIR holds only digits, apart from 2A or 2B as the department")]
    NotDigits,
    /// The department is neither two digits nor 2A/2B.
    #[error("the department (characters 6 and 7) must be two digits, 2A or 2B")]
    Department,
    /// The first digit is not a known sex code.
    #[error("the first digit of a NIR must be 1, 2, 3, 4, 7 or 8")]
    Sex,
    /// The month of birth is outside 01–12, 20–42 and 50–99.
    #[error("the month (characters 4 and 5) must be 01 to 12, 20 to 42 or 50 to 99")]
    Month,
    /// The control key does not match the first 13 characters.
    #[error("the NIR control key does not match")]
    Key,
}

/// A syntactically valid NIR with a correct key, kept as its 15 upper-case characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nir(String);

impl fmt::Debug for Nir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nir({})", crate::personal::REDACTED)
    }
}

const SEX_DIGITS: &[u8] = b"123478";

/// Positions (0-based) of the department, the only place letters may appear.
const DEPARTMENT: std::ops::Range<usize> = 5..7;

impl Nir {
    /// Parses a NIR typed or scanned by a person: spaces are ignored and `2a`/`2b` accepted.
    pub fn parse(input: &str) -> Result<Self, NirError> {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let found = compact.chars().count();
        if found != 15 {
            return Err(NirError::Length { found });
        }
        // From here on every character is checked to be ASCII before any byte slicing.
        let bytes = compact.as_bytes();
        if bytes.len() != 15 {
            return Err(NirError::NotDigits);
        }
        let outside_department = bytes
            .iter()
            .enumerate()
            .filter(|(index, _)| !DEPARTMENT.contains(index));
        if outside_department.clone().any(|(_, byte)| !byte.is_ascii_digit()) {
            return Err(NirError::NotDigits);
        }
        department_value(&bytes[DEPARTMENT]).ok_or(NirError::Department)?;
        if !SEX_DIGITS.contains(&bytes[0]) {
            return Err(NirError::Sex);
        }
        let month = two_digits(bytes[3], bytes[4]);
        if !month_is_valid(month) {
            return Err(NirError::Month);
        }
        let expected = compute_key_bytes(&bytes[..13]).ok_or(NirError::NotDigits)?;
        if two_digits(bytes[13], bytes[14]) != expected {
            return Err(NirError::Key);
        }
        Ok(Self(compact))
    }

    /// The key of a 13-character prefix (digits, department may be `2A`/`2B`), or `None` if malformed.
    ///
    /// Only the character classes are checked, not the sex or month rules, so a seeder can build any
    /// NIR it wants and then let [`Nir::parse`] judge it.
    pub fn compute_key(first13: &str) -> Option<u8> {
        let upper = first13.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        if bytes.len() != 13 {
            return None;
        }
        compute_key_bytes(bytes)
    }

    /// The 15 characters, e.g. `295109912611193`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sex code: 1 or 2 (3, 4: foreign-born pending; 7, 8: temporary number).
    pub fn sex_digit(&self) -> u8 {
        self.0.as_bytes()[0] - b'0'
    }

    /// The sex the NIR encodes (odd codes are male, even ones female).
    pub fn sex(&self) -> Sex {
        if self.sex_digit() % 2 == 1 { Sex::M } else { Sex::F }
    }

    /// Sex, year and month kept, the rest hidden: `2 95 10 ** *** *** **`.
    pub fn masked(&self) -> String {
        let s = &self.0;
        format!("{} {} {} ** *** *** **", &s[0..1], &s[1..3], &s[3..5])
    }

    /// The usual printed grouping: `2 95 10 99 126 111 93`.
    pub fn formatted(&self) -> String {
        let s = &self.0;
        format!(
            "{} {} {} {} {} {} {}",
            &s[0..1],
            &s[1..3],
            &s[3..5],
            &s[5..7],
            &s[7..10],
            &s[10..13],
            &s[13..15]
        )
    }

    /// Gives the 15 characters back.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl FromStr for Nir {
    type Err = NirError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl Serialize for Nir {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Nir {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(|error| D::Error::custom(format_args!("invalid NIR: {error}")))
    }
}

fn two_digits(tens: u8, units: u8) -> u8 {
    (tens - b'0') * 10 + (units - b'0')
}

/// 01–12 are calendar months; 20–42 and 50–99 are issued when the month of birth is unknown.
fn month_is_valid(month: u8) -> bool {
    matches!(month, 1..=12 | 20..=42 | 50..=99)
}

/// The department as it counts in the key: digits as such, `2A` as 19 and `2B` as 18.
fn department_value(department: &[u8]) -> Option<u64> {
    match department {
        b"2A" => Some(19),
        b"2B" => Some(18),
        [tens, units] if tens.is_ascii_digit() && units.is_ascii_digit() => Some(u64::from(two_digits(*tens, *units))),
        _ => None,
    }
}

fn compute_key_bytes(first13: &[u8]) -> Option<u8> {
    if first13.len() != 13 {
        return None;
    }
    let mut number: u64 = 0;
    for (index, byte) in first13.iter().enumerate() {
        if DEPARTMENT.contains(&index) {
            continue;
        }
        if !byte.is_ascii_digit() {
            return None;
        }
        if index == DEPARTMENT.end {
            number = number * 100 + department_value(&first13[DEPARTMENT])?;
        }
        number = number * 10 + u64::from(byte - b'0');
    }
    let key = 97 - number % 97;
    u8::try_from(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors_parse() {
        for (input, formatted) in [
            ("295109912611193", "2 95 10 99 126 111 93"),
            ("253072B07300470", "2 53 07 2B 073 004 70"),
            ("253072A07300443", "2 53 07 2A 073 004 43"),
        ] {
            let nir = Nir::parse(input).expect(input);
            assert_eq!(nir.as_str(), input);
            assert_eq!(nir.formatted(), formatted);
            assert_eq!(nir.sex_digit(), 2);
            assert_eq!(nir.sex(), Sex::F);
        }
    }

    #[test]
    fn spaces_and_lower_case_corsica_are_accepted() {
        let nir = Nir::parse(" 2 53 07 2a 073 004 43 ").expect("spaced lower-case 2a");
        assert_eq!(nir.as_str(), "253072A07300443");
        let nir = Nir::parse("253072b07300470").expect("lower-case 2b");
        assert_eq!(nir.as_str(), "253072B07300470");
    }

    #[test]
    fn masked_and_formatted_forms() {
        let nir = Nir::parse("295109912611193").expect("valid");
        assert_eq!(nir.masked(), "2 95 10 ** *** *** **");
        assert_eq!(nir.formatted(), "2 95 10 99 126 111 93");
    }

    #[test]
    fn each_rule_has_its_error() {
        let cases = [
            ("295109912611194", NirError::Key),
            ("29510991261119", NirError::Length { found: 14 }),
            ("2951099126111930", NirError::Length { found: 16 }),
            ("", NirError::Length { found: 0 }),
            ("29510991261119X", NirError::NotDigits),
            ("2951099126111é3", NirError::NotDigits),
            ("595109912611193", NirError::Sex),
            ("095109912611193", NirError::Sex),
            ("295009912611193", NirError::Month),
            ("295139912611193", NirError::Month),
            ("295439912611193", NirError::Month),
            ("253072C07300443", NirError::Department),
            ("253073A07300443", NirError::Department),
            ("25307AB07300443", NirError::Department),
        ];
        for (input, expected) in cases {
            assert_eq!(Nir::parse(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn special_months_are_accepted() {
        for month in ["20", "31", "42", "50", "99"] {
            let prefix = format!("195{month}75056123");
            let key = Nir::compute_key(&prefix).expect("key");
            Nir::parse(&format!("{prefix}{key:02}")).expect(&prefix);
        }
    }

    #[test]
    fn errors_never_echo_the_input() {
        for input in ["295109912611194", "29510991261119X", "253072C07300443", "123"] {
            let error = Nir::parse(input).expect_err(input);
            let message = error.to_string();
            assert!(!message.contains(input), "{message}");
            assert!(!format!("{error:?}").contains(input));
        }
    }

    #[test]
    fn compute_key_checks_shape() {
        assert_eq!(Nir::compute_key("2951099126111"), Some(93));
        assert_eq!(Nir::compute_key("253072B073004"), Some(70));
        assert_eq!(Nir::compute_key("253072a073004"), Some(43));
        assert_eq!(Nir::compute_key("295109912611"), None);
        assert_eq!(Nir::compute_key("2951099126X11"), None);
        assert_eq!(Nir::compute_key("25307AB073004"), None);
    }

    #[test]
    fn debug_redacts() {
        let nir = Nir::parse("295109912611193").expect("valid");
        assert_eq!(format!("{nir:?}"), "Nir(<redacted>)");
    }

    #[test]
    fn serde_uses_the_compact_string_and_parse() {
        let nir = Nir::parse("2 95 10 99 126 111 93").expect("valid");
        assert_eq!(serde_json::to_string(&nir).expect("serialize"), r#""295109912611193""#);
        let back: Nir = serde_json::from_str(r#""295109912611193""#).expect("deserialize");
        assert_eq!(back, nir);
        let error = serde_json::from_str::<Nir>(r#""295109912611194""#).expect_err("bad key");
        assert!(error.to_string().contains("control key"), "{error}");
        assert!(!error.to_string().contains("295109912611194"), "{error}");
    }

    /// A tiny linear congruential generator: enough spread for a property check, no extra crate.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }
    }

    #[test]
    fn any_generated_prefix_accepts_exactly_its_computed_key() {
        let mut rng = Lcg(0x5eed_1ab5);
        let months: Vec<u64> = (1..=12).chain(20..=42).chain(50..=99).collect();
        for round in 0..2_000 {
            let sex = [1, 2, 3, 4, 7, 8][usize::try_from(rng.next(6)).expect("small")];
            let year = rng.next(100);
            let month = months[usize::try_from(rng.next(months.len() as u64)).expect("small")];
            let department = match round % 10 {
                0 => "2A".to_owned(),
                1 => "2B".to_owned(),
                _ => format!("{:02}", rng.next(100)),
            };
            let rest = rng.next(1_000_000);
            let prefix = format!("{sex}{year:02}{month:02}{department}{rest:06}");
            let key = Nir::compute_key(&prefix).expect("well-formed prefix");
            assert!((1..=97).contains(&key), "{prefix} gave key {key}");
            let nir = Nir::parse(&format!("{prefix}{key:02}")).expect(&prefix);
            assert_eq!(nir.as_str().len(), 15);
            for other in (0..100).filter(|other| *other != key) {
                assert_eq!(
                    Nir::parse(&format!("{prefix}{other:02}")),
                    Err(NirError::Key),
                    "{prefix} with key {other}"
                );
            }
        }
    }
}
