//! A tablet over real HTTPS, for end-to-end tests against the spawned binaries: the lab admin
//! enrolls it, a nurse logs in, and it writes collections continuously, retrying each with its own
//! idempotency key until it is acknowledged — what a real tablet does through outages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::TestDb;

/// Waits until `url/healthz` answers 200 (at most 30 s).
pub async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    while !client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(started.elapsed() < Duration::from_secs(30), "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lab admin's console session at `gateway`, once the gateway has its lab's data (at most 60 s).
pub async fn admin_session(client: &reqwest::Client, gateway: &str, login: &str, password: &str) -> (String, String) {
    let started = Instant::now();
    let response = loop {
        let response = client
            .post(format!("{gateway}/admin/v1/login"))
            .json(&serde_json::json!({"login": login, "password": password}))
            .send()
            .await
            .expect("admin login");
        if response.status().is_success() {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway never got its lab's data"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("session");
    (cookie, body["csrf_token"].as_str().expect("csrf").to_owned())
}

/// Enrolls a tablet with the admin's session and logs `login` in with the demo PIN `1234`; returns
/// the access token.
pub async fn enroll_and_login(
    client: &reqwest::Client,
    gateway: &str,
    admin: &(String, String),
    login: &str,
) -> String {
    let code: serde_json::Value = client
        .post(format!("{gateway}/admin/v1/enrollment-codes"))
        .header("cookie", &admin.0)
        .header("x-csrf-token", &admin.1)
        .send()
        .await
        .expect("code")
        .json()
        .await
        .expect("code body");
    let enrolled: serde_json::Value = client
        .post(format!("{gateway}/v1/devices/enroll"))
        .json(&serde_json::json!({"code": code["code"], "label": "Tablette e2e"}))
        .send()
        .await
        .expect("enroll")
        .json()
        .await
        .expect("enroll body");
    let tokens: serde_json::Value = client
        .post(format!("{gateway}/v1/auth/login"))
        .json(&serde_json::json!({
            "device_id": enrolled["device_id"], "device_secret": enrolled["device_secret"],
            "login": login, "pin": "1234"
        }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    tokens["access_token"].as_str().expect("access token").to_owned()
}

/// A visit a nurse can record a collection for.
#[derive(Clone, Debug, diesel::QueryableByName)]
pub struct Visit {
    /// The appointment.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub appointment: Uuid,
    /// Its patient.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub patient: Uuid,
    /// Its prescription.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub prescription: Uuid,
}

/// The visits of a gateway's database, once its bootstrap is complete (at most 60 s).
pub async fn visits(edge: &TestDb) -> Vec<Visit> {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = Instant::now();
    loop {
        let n: N = diesel::sql_query("SELECT count(*) AS n FROM sync_checkpoints")
            .get_result(&mut edge.conn().await)
            .await
            .expect("checkpoints");
        if n.n > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bootstrap did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    diesel::sql_query(
        "SELECT id AS appointment, patient_id AS patient, prescription_id AS prescription FROM appointments \
         WHERE prescription_id IS NOT NULL ORDER BY scheduled_at",
    )
    .load(&mut edge.conn().await)
    .await
    .expect("visits")
}

/// A tablet writing collections until stopped.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Uuid>>,
}

impl Writer {
    /// Starts writing collections for `visits`, in turn, through `gateway`.
    pub fn start(client: reqwest::Client, gateway: String, token: String, visits: Vec<Visit>) -> Self {
        assert!(!visits.is_empty(), "no visit to record");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0usize;
            while !AtomicBool::load(&flag, Ordering::Acquire) {
                let visit = &visits[i % visits.len()];
                i += 1;
                let id = Uuid::now_v7();
                let key = Uuid::new_v4().to_string();
                let body = serde_json::json!({
                    "id": id, "patient_id": visit.patient, "appointment_id": visit.appointment,
                    "prescription_id": visit.prescription,
                    "collected_at": time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339).expect("time"),
                    "identity_checked": true, "identity_check_method": "health_card",
                    "tubes": [{"barcode": format!("K{}", &Uuid::new_v4().simple().to_string()[..14].to_uppercase()), "tube_type": "EDTA"}]
                });
                let sent = Instant::now();
                loop {
                    let answer = client
                        .post(format!("{gateway}/v1/collections"))
                        .bearer_auth(&token)
                        .header("idempotency-key", &key)
                        .json(&body)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().as_u16() == 201 => {
                            acknowledged.push(id);
                            break;
                        }
                        // A gateway starting or restarting, or the first write still in flight: retry.
                        Ok(r) => assert!(
                            r.status().is_server_error() || r.status().as_u16() == 409,
                            "unexpected answer to a write: {}",
                            r.status()
                        ),
                        Err(_) => {}
                    }
                    assert!(
                        sent.elapsed() < Duration::from_secs(60),
                        "a write was never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acknowledged
        });
        Self { stop, task }
    }

    /// Stops and returns the ids of the acknowledged collections.
    pub async fn stop(self) -> Vec<Uuid> {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("writer")
    }
}
