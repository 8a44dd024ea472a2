//! Staff sessions on an enrolled device: login, refresh, logout and `GET /v1/me`; a staff member's
//! PIN, changed by themselves or reset with a one-time code from their lab admin.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::common::{DeviceRef, LabRef, Role};
use crate::personal::Secret;
use crate::rules::{self, Checks};

/// Login of a staff member on an enrolled device; works offline from the lab's synced staff list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Device id received at enrollment.
    pub device_id: Uuid,
    /// Device secret received at enrollment.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 16, max_length = 128, pattern = "^[!-~]{16,128}$"))]
    pub device_secret: Secret,
    /// Staff login: 3 to 32 characters among a-z, 0-9, '.', '_' and '-'.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 32,
            pattern = "^[a-z0-9._-]{3,32}$",
            examples("c.martin")
        )
    )]
    pub login: String,
    /// Staff PIN: 4 to 12 digits.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 4, max_length = 12, pattern = "^[0-9]{4,12}$"))]
    pub pin: Secret,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        checks
            .field("device_id", rules::not_nil(&self.device_id))
            .field(
                "device_secret",
                rules::device_secret(self.device_secret.expose_secret()),
            )
            .field("login", rules::login(&self.login))
            .field("pin", rules::pin(self.pin.expose_secret()));
        checks.finish()
    }
}

/// Exchange of a refresh token for a new pair; the old refresh token stops working (rotation).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    /// Device id received at enrollment.
    pub device_id: Uuid,
    /// Device secret received at enrollment.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 16, max_length = 128, pattern = "^[!-~]{16,128}$"))]
    pub device_secret: Secret,
    /// The refresh token of the last token response.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 1, max_length = 512, pattern = "^[!-~]{1,512}$"))]
    pub refresh_token: Secret,
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        checks
            .field("device_id", rules::not_nil(&self.device_id))
            .field(
                "device_secret",
                rules::device_secret(self.device_secret.expose_secret()),
            )
            .field(
                "refresh_token",
                rules::refresh_token(self.refresh_token.expose_secret()),
            );
        checks.finish()
    }
}

/// End of a session: the access token is revoked, and the refresh token too when given.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogoutRequest {
    /// The refresh token to revoke with the session.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 512, pattern = "^[!-~]{1,512}$"))]
    pub refresh_token: Option<Secret>,
}

impl Validate for LogoutRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        if let Some(token) = &self.refresh_token {
            checks.field("refresh_token", rules::refresh_token(token.expose_secret()));
        }
        checks.finish()
    }
}

/// The only token type issued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenType {
    /// Send as `Authorization: Bearer <access_token>`.
    #[default]
    Bearer,
}

/// A fresh token pair after login or refresh.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// Short-lived JWT bound to staff, device and lab.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password))]
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u32,
    /// Single-use token to get the next pair from `/v1/auth/refresh`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password))]
    pub refresh_token: Secret,
    /// Lifetime of the refresh token, in seconds.
    pub refresh_expires_in: u32,
    /// Until when this device may keep working without reaching the gateway (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub offline_grace_until: OffsetDateTime,
    /// Who is logged in.
    pub staff: Me,
}

/// The logged-in staff member, their lab and device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// Staff id.
    pub staff_id: Uuid,
    /// Login.
    pub login: String,
    /// Name to show in the app header.
    pub display_name: String,
    /// What the staff member may do.
    pub role: Role,
    /// The lab of the session (a token never reads another lab's data).
    pub lab: LabRef,
    /// The device of the session.
    pub device: DeviceRef,
    /// Until when the device may keep working offline (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub offline_grace_until: OffsetDateTime,
}

/// A staff member's own PIN change, logged in on their tablet (`POST /v1/auth/pin`); their session
/// goes on. The gateway relays the new PIN's hash to the cloud, never the PIN.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PinChangeRequest {
    /// The PIN they log in with now.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 4, max_length = 12, pattern = "^[0-9]{4,12}$"))]
    pub current_pin: Secret,
    /// The new PIN: 4 to 12 digits, not the current one.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 4, max_length = 12, pattern = "^[0-9]{4,12}$"))]
    pub new_pin: Secret,
}

impl Validate for PinChangeRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        checks
            .field("current_pin", rules::pin(self.current_pin.expose_secret()))
            .field("new_pin", rules::pin(self.new_pin.expose_secret()));
        // Only the tablet's own two fields are compared; the stored PIN only ever through its hash.
        if self.current_pin.expose_secret() == self.new_pin.expose_secret() {
            checks.field(
                "new_pin",
                Err(rules::fail("same_pin", "must differ from the current PIN")),
            );
        }
        checks.finish()
    }
}

/// A new PIN set with the one-time code a lab admin made for a staff member who forgot theirs
/// (`POST /v1/auth/pin/reset`), on an enrolled tablet; works offline at the gateway. The code is
/// spent, and the staff member's sessions end: they log in again with the new PIN.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PinResetRequest {
    /// Device id received at enrollment.
    pub device_id: Uuid,
    /// Device secret received at enrollment.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 16, max_length = 128, pattern = "^[!-~]{16,128}$"))]
    pub device_secret: Secret,
    /// Staff login: 3 to 32 characters among a-z, 0-9, '.', '_' and '-'.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 32,
            pattern = "^[a-z0-9._-]{3,32}$",
            examples("c.martin")
        )
    )]
    pub login: String,
    /// The one-time code the lab admin read out: 6 to 12 characters among A-Z and 2-9.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 6, max_length = 12, pattern = "^[A-Z2-9]{6,12}$"))]
    pub reset_code: Secret,
    /// The new PIN: 4 to 12 digits.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 4, max_length = 12, pattern = "^[0-9]{4,12}$"))]
    pub new_pin: Secret,
}

impl Validate for PinResetRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut checks = Checks::default();
        checks
            .field("device_id", rules::not_nil(&self.device_id))
            .field(
                "device_secret",
                rules::device_secret(self.device_secret.expose_secret()),
            )
            .field("login", rules::login(&self.login))
            .field("reset_code", rules::enrollment_code(self.reset_code.expose_secret()))
            .field("new_pin", rules::pin(self.new_pin.expose_secret()));
        checks.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pin_change_and_reset_rules_and_no_value_in_errors() {
        let change = PinChangeRequest {
            current_pin: Secret::new("482916"),
            new_pin: Secret::new("735104"),
        };
        assert!(change.validate().is_ok());
        assert!(!format!("{change:?}").contains("735104"));
        let same = PinChangeRequest {
            current_pin: Secret::new("482916"),
            new_pin: Secret::new("482916"),
        };
        let errors = same.validate().expect_err("same PIN");
        assert!(errors.field_errors().contains_key("new_pin"));
        assert!(!format!("{errors:?}").contains("482916"));
        let bad = PinChangeRequest {
            current_pin: Secret::new("12"),
            new_pin: Secret::new("12ab"),
        };
        let errors = bad.validate().expect_err("bad PINs");
        assert!(errors.field_errors().contains_key("current_pin"));
        assert!(!format!("{errors:?}").contains("12ab"));

        let reset = PinResetRequest {
            device_id: Uuid::from_u128(1),
            device_secret: Secret::new("dev-secret-0123456789abcdef"),
            login: "c.martin".into(),
            reset_code: Secret::new("K7WQ4PZX"),
            new_pin: Secret::new("735104"),
        };
        assert!(reset.validate().is_ok());
        assert!(!format!("{reset:?}").contains("K7WQ4PZX"));
        let wrong = PinResetRequest {
            device_id: Uuid::nil(),
            reset_code: Secret::new("k7wq-4pzx"),
            new_pin: Secret::new("7351049999999"),
            ..reset
        };
        let errors = wrong.validate().expect_err("bad reset");
        let fields = errors.field_errors();
        for field in ["device_id", "reset_code", "new_pin"] {
            assert!(fields.contains_key(field), "{field}");
        }
        assert!(!format!("{errors:?}").contains("k7wq"));
    }

    fn login() -> LoginRequest {
        LoginRequest {
            device_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            device_secret: Secret::new("dev-secret-0123456789abcdef"),
            login: "c.martin".into(),
            pin: Secret::new("482916"),
        }
    }

    #[test]
    fn valid_login_passes_and_debug_hides_credentials() {
        let request = login();
        request.validate().expect("valid");
        let text = format!("{request:?} {request:#?}");
        assert!(!text.contains("482916"), "{text}");
        assert!(!text.contains("dev-secret"), "{text}");
    }

    #[test]
    fn login_rules_and_no_value_in_errors() {
        let request = LoginRequest {
            device_id: Uuid::nil(),
            device_secret: Secret::new("short"),
            login: "C.Martin".into(),
            pin: Secret::new("48a916"),
        };
        let errors = request.validate().expect_err("invalid");
        let fields = errors.field_errors();
        for field in ["device_id", "device_secret", "login", "pin"] {
            assert!(fields.contains_key(field), "{field}");
        }
        let text = format!("{errors:?}");
        assert!(!text.contains("48a916") && !text.contains("short"), "{text}");
    }

    #[test]
    fn refresh_and_logout_rules() {
        let refresh = RefreshRequest {
            device_id: Uuid::from_u128(1),
            device_secret: Secret::new("dev-secret-0123456789abcdef"),
            refresh_token: Secret::new("r".repeat(513)),
        };
        assert!(
            refresh
                .validate()
                .expect_err("long")
                .field_errors()
                .contains_key("refresh_token")
        );
        LogoutRequest::default().validate().expect("empty logout");
        let logout: LogoutRequest = serde_json::from_str("{}").expect("empty body");
        assert!(logout.refresh_token.is_none());
        assert!(serde_json::from_str::<LogoutRequest>(r#"{"all_devices":true}"#).is_err());
    }

    #[test]
    fn token_response_wire_shape() {
        let me = Me {
            staff_id: Uuid::from_u128(2),
            login: "c.martin".into(),
            display_name: "Claire M.".into(),
            role: Role::HomeSampler,
            lab: LabRef {
                id: Uuid::from_u128(3),
                code: "LAB-NORD".into(),
                name: "Lab Nord".into(),
            },
            device: DeviceRef {
                id: Uuid::from_u128(4),
                label: "Tablette 3".into(),
            },
            offline_grace_until: time::macros::datetime!(2025-03-01 18:00 UTC),
        };
        let token = TokenResponse {
            access_token: Secret::new("eyJ.access"),
            token_type: TokenType::Bearer,
            expires_in: 900,
            refresh_token: Secret::new("refresh-1"),
            refresh_expires_in: 43_200,
            offline_grace_until: me.offline_grace_until,
            staff: me,
        };
        let value = serde_json::to_value(&token).expect("json");
        assert_eq!(value["token_type"], json!("Bearer"));
        assert_eq!(value["access_token"], json!("eyJ.access"));
        assert_eq!(value["offline_grace_until"], json!("2025-03-01T18:00:00Z"));
        assert_eq!(value["staff"]["role"], json!("home_sampler"));
        assert!(!format!("{token:?}").contains("eyJ.access"));
    }
}
