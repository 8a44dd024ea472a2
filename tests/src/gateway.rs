//! A gateway under test, in process: its own edge database (migrated, with a lab and staff as the
//! sync would bring them), Redis prefix and lab CA, and helpers for the admin console and tablets.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use diesel_async::SimpleAsyncConnection;
use labedge_edge_gateway::config::Config;
use labedge_edge_gateway::state::AppState;
use labedge_schema::db::Database;
use labedge_service::secrets::hash_secret;
use mobile_contracts::{EnrollRequest, EnrollResponse, LoginRequest, Secret, TokenResponse};
use uuid::Uuid;

use crate::app::{TestApp, TestResponse};
use crate::db::TestDb;
use crate::fixtures::gateway_config;
use crate::redis::TestRedis;

/// The seeded staff: login, PIN, role.
pub const NURSE: (&str, &str) = ("n.dupont", "1234");
/// A home-sampling staff member.
pub const HOME_SAMPLER: (&str, &str) = ("h.martin", "2468");
/// The lab admin (PIN, and console password [`ADMIN_PASSWORD`]).
pub const ADMIN: (&str, &str) = ("a.bernard", "1357");
/// The lab admin's console password.
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// A peer inside the admin range of [`gateway_config`].
pub const ADMIN_PEER: &str = "192.168.10.20:51000";
/// A peer inside the tablet VPN range.
pub const TABLET_PEER: &str = "10.8.0.10:50000";

/// An enrolled device's credentials.
#[derive(Clone, Debug)]
pub struct Device {
    /// Device id.
    pub id: Uuid,
    /// Device secret.
    pub secret: String,
    /// The enrollment answer.
    pub enrolled: EnrollResponse,
}

/// An admin console session.
#[derive(Clone, Debug)]
pub struct AdminCookie {
    /// `labedge_admin=…`.
    pub cookie: String,
    /// The CSRF token.
    pub csrf: String,
}

/// A gateway under test.
#[derive(Debug)]
pub struct TestGateway {
    /// Its database.
    pub db: TestDb,
    /// Its Redis prefix.
    pub redis: TestRedis,
    /// Its lab CA folder.
    pub pki: tempfile::TempDir,
    /// Its state (tests reach the pool, the keys, the revocations).
    pub state: AppState,
    /// The app, in process.
    pub app: TestApp,
    /// The lab's id.
    pub lab_id: Uuid,
    /// Staff ids by login.
    pub staff: Vec<(String, Uuid)>,
}

impl TestGateway {
    /// A gateway of lab `TEST-LAB`.
    pub async fn start() -> Self {
        Self::start_with("TEST-LAB", |_| {}).await
    }

    /// A gateway of lab `code`, with its config adjusted by `adjust`.
    pub async fn start_with(code: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::build(code, true, adjust).await
    }

    /// A new gateway of lab `code` with an empty database, which bootstraps from the cloud.
    pub async fn start_empty(code: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::build(code, false, adjust).await
    }

    async fn build(code: &str, seeded: bool, adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::migrated(Database::Edge).await;
        let redis = TestRedis::new();
        let pki = tempfile::tempdir().expect("tempdir");
        let lab_id = Uuid::now_v7();
        let staff = if seeded {
            seed_lab(&db, lab_id, code).await
        } else {
            Vec::new()
        };
        let mut config = gateway_config(code, db.url(), redis.prefix(), pki.path());
        adjust(&mut config);
        let state = labedge_edge_gateway::startup::build_state(config)
            .await
            .expect("gateway state");
        let app = TestApp::new(labedge_edge_gateway::startup::app(state.clone())).await;
        Self {
            db,
            redis,
            pki,
            state,
            app,
            lab_id,
            staff,
        }
    }

    /// The id of a seeded staff member.
    pub fn staff_id(&self, login: &str) -> Uuid {
        self.staff
            .iter()
            .find(|(l, _)| l == login)
            .map(|(_, id)| *id)
            .expect("seeded login")
    }

    /// Sends a request from the admin network.
    pub async fn from_admin_network(&self, request: TestRequest) -> TestResponse {
        let app = TestApp {
            peer: ADMIN_PEER.parse().expect("peer"),
            certificate: None,
            ..self.app_clone()
        };
        app.send(request).await
    }

    /// Sends a request of the console as `admin` (its session cookie and CSRF token), from the admin
    /// network.
    pub async fn console(&self, admin: &AdminCookie, request: TestRequest) -> TestResponse {
        self.from_admin_network(
            request
                .insert_header(("cookie", admin.cookie.clone()))
                .insert_header(("x-csrf-token", admin.csrf.clone())),
        )
        .await
    }

    /// Revokes device `device` through the console, as `admin` (200 expected).
    pub async fn revoke_device(&self, admin: &AdminCookie, device: Uuid) -> TestResponse {
        self.console(
            admin,
            TestRequest::post().uri(&format!("/admin/v1/devices/{device}/revoke")),
        )
        .await
        .expect(200)
    }

    fn app_clone(&self) -> TestApp {
        self.app.clone()
    }

    /// Logs the lab admin in to the console.
    pub async fn admin_login(&self) -> AdminCookie {
        self.admin_login_as(ADMIN.0, ADMIN_PASSWORD).await
    }

    /// Logs a lab admin in to the console with their password.
    pub async fn admin_login_as(&self, login: &str, password: &str) -> AdminCookie {
        let response = self
            .from_admin_network(
                TestRequest::post()
                    .uri("/admin/v1/login")
                    .set_json(serde_json::json!({"login": login, "password": password})),
            )
            .await
            .expect(200);
        let set_cookie = response.header("set-cookie").expect("session cookie");
        let cookie = set_cookie.split(';').next().expect("cookie pair").to_owned();
        let csrf = response.json::<serde_json::Value>()["csrf_token"]
            .as_str()
            .expect("csrf")
            .to_owned();
        AdminCookie { cookie, csrf }
    }

    /// A one-time enrollment code, created through the console.
    pub async fn enrollment_code(&self, admin: &AdminCookie) -> String {
        let response = self
            .console(admin, TestRequest::post().uri("/admin/v1/enrollment-codes"))
            .await
            .expect(201);
        response.json::<serde_json::Value>()["code"]
            .as_str()
            .expect("code")
            .to_owned()
    }

    /// Enrolls a tablet (with a CSR when given).
    pub async fn enroll(&self, csr_pem: Option<String>) -> Device {
        let admin = self.admin_login().await;
        self.enroll_with(&admin, csr_pem).await
    }

    /// Enrolls a tablet with a code from this admin session.
    pub async fn enroll_with(&self, admin: &AdminCookie, csr_pem: Option<String>) -> Device {
        let admin = admin.clone();
        let code = self.enrollment_code(&admin).await;
        let request = EnrollRequest {
            code,
            label: "Tablette test".into(),
            app_version: Some("1.0.0".into()),
            csr_pem,
        };
        let enrolled: EnrollResponse = self
            .app
            .json(Method::POST, "/v1/devices/enroll", &request)
            .await
            .expect(201)
            .json();
        Device {
            id: enrolled.device_id,
            secret: enrolled.device_secret.expose_secret().to_owned(),
            enrolled,
        }
    }

    /// The answer to a PIN login.
    pub async fn try_login(&self, device: &Device, login: &str, pin: &str) -> TestResponse {
        let request = LoginRequest {
            device_id: device.id,
            device_secret: Secret::new(device.secret.clone()),
            login: login.into(),
            pin: Secret::new(pin),
        };
        self.app.json(Method::POST, "/v1/auth/login", &request).await
    }

    /// A successful PIN login.
    pub async fn login(&self, device: &Device, login: &str, pin: &str) -> TokenResponse {
        self.try_login(device, login, pin).await.expect(200).json()
    }

    /// An enrolled tablet with a nurse logged in: (device, access token).
    pub async fn nurse_tablet(&self) -> (Device, TokenResponse) {
        let device = self.enroll(None).await;
        let tokens = self.login(&device, NURSE.0, NURSE.1).await;
        (device, tokens)
    }

    /// The HMAC key `kid` of the ring, unsealed with the gateway's key-encryption key as the gateway
    /// does (tests forge tokens with it).
    pub async fn signing_secret(&self, kid: &str) -> Vec<u8> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Bytea)]
            sealed_secret: Vec<u8>,
        }
        let row: Row = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query("SELECT sealed_secret FROM signing_keys WHERE kid = $1")
                .bind::<diesel::sql_types::Text, _>(kid),
            &mut self.db.conn().await,
        )
        .await
        .expect("signing key");
        self.kek()
            .open(kid, &row.sealed_secret)
            .expect("sealed under the gateway's KEK")
    }

    /// The gateway's key-encryption key as configured (base64), for the environment of a binary that
    /// must open the same sealed keys.
    pub fn key_encryption_key(&self) -> String {
        self.state
            .config
            .auth
            .key_encryption_key
            .as_ref()
            .expect("the test gateway's KEK")
            .expose_secret()
            .to_owned()
    }

    /// The gateway's key-encryption key.
    pub fn kek(&self) -> labedge_edge_gateway::auth::keys::Kek {
        labedge_edge_gateway::auth::keys::Kek::from_config(&self.state.config.auth).expect("a KEK")
    }
}

/// Part `i` of a JSON web token (0: its header, 1: its claims), decoded.
pub fn token_part(token: &str, i: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(i).expect("a part of the token");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&json).expect("JSON")
}

/// A token of `header` and `claims` signed with HMAC-SHA256 under `secret` through jsonwebtoken, so
/// that a forged token (with [`TestGateway::signing_secret`], say) is signed exactly as a real one.
pub fn forge_token(header: &serde_json::Value, claims: &serde_json::Value, secret: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(header.to_string());
    let body = b64.encode(claims.to_string());
    let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("HS256 key");
    let signature = jsonwebtoken::crypto::sign(
        format!("{head}.{body}").as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256");
    format!("{head}.{body}.{signature}")
}

impl Clone for TestApp {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            peer: self.peer,
            certificate: self.certificate.clone(),
        }
    }
}

/// Inserts the lab and its staff as the sync from the cloud would.
async fn seed_lab(db: &TestDb, lab_id: Uuid, code: &str) -> Vec<(String, Uuid)> {
    // The lab's appointment window as a feed page would have given it, long enough for the tests'
    // dates (next year's nights when the clocks change).
    let mut sql = format!(
        "INSERT INTO labs (id, code, name, kind, version) VALUES ('{lab_id}', '{code}', 'Laboratoire {code}', 'proximity', 1);\
         INSERT INTO appointment_window (ends_at) VALUES (now() + interval '400 days');"
    );
    let mut staff = Vec::new();
    let password_hash = hash_secret(ADMIN_PASSWORD).expect("hash");
    for ((login, pin), role, name) in [
        (NURSE, "nurse", "Nina Dupont"),
        (HOME_SAMPLER, "home_sampler", "Hugo Martin"),
        (ADMIN, "lab_admin", "Alice Bernard"),
    ] {
        let id = Uuid::now_v7();
        let pin_hash = hash_secret(pin).expect("hash");
        let password = if role == "lab_admin" {
            format!("'{password_hash}'")
        } else {
            "NULL".into()
        };
        sql.push_str(&format!(
            "INSERT INTO staff (id, lab_id, login, display_name, role, pin_hash, password_hash, active, version) \
             VALUES ('{id}', '{lab_id}', '{login}', '{name}', '{role}', '{pin_hash}', {password}, true, 1);"
        ));
        staff.push((login.to_owned(), id));
    }
    db.conn().await.batch_execute(&sql).await.expect("seed the lab");
    staff
}
