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
    visits_at(edge.url()).await
}

/// The visits of the gateway's database at `url` (one of the test's own clusters, say), once its
/// bootstrap is complete (at most 60 s).
pub async fn visits_at(url: &str) -> Vec<Visit> {
    use diesel_async::AsyncConnection;
    let connect = || async {
        diesel_async::AsyncPgConnection::establish(url)
            .await
            .expect("edge database")
    };
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = Instant::now();
    loop {
        let n: N = diesel::sql_query("SELECT count(*) AS n FROM sync_checkpoints")
            .get_result(&mut connect().await)
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
    .load(&mut connect().await)
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

/// A desk booking lab visits until stopped, in the free slots of the coming days as
/// `GET /v1/slots` lists them, each booking retried under its key until it is acknowledged (a
/// gateway restarting, the first attempt in flight); a slot found full (409 `slot_unavailable`,
/// nothing written) is passed for the next one with a new booking.
#[derive(Debug)]
pub struct Booker {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Uuid>>,
}

impl Booker {
    /// Starts booking visits for `patients`, in turn, through `gateway`.
    pub fn start(client: reqwest::Client, gateway: String, token: String, patients: Vec<Uuid>) -> Self {
        assert!(!patients.is_empty(), "no patient to book for");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut starts = std::collections::VecDeque::new();
            let (mut day, mut i) = (0i64, 0usize);
            while !AtomicBool::load(&flag, Ordering::Acquire) {
                let Some(start) = starts.pop_front() else {
                    match free_slots(&client, &gateway, &token, day + 1).await {
                        Day::Free(free) => {
                            day += 1;
                            starts.extend(free);
                        }
                        // Every place of the lab's appointment window is booked: the desk is done.
                        Day::Beyond => tokio::time::sleep(Duration::from_millis(200)).await,
                        Day::Unreachable => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                    continue;
                };
                let id = Uuid::now_v7();
                let key = Uuid::new_v4().to_string();
                let body = serde_json::json!({
                    "id": id, "patient_id": patients[i % patients.len()], "kind": "lab", "scheduled_at": start,
                });
                i += 1;
                let sent = Instant::now();
                loop {
                    let answer = client
                        .post(format!("{gateway}/v1/appointments"))
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
                        Ok(r) if r.status().as_u16() == 409 => {
                            let problem: serde_json::Value = r.json().await.unwrap_or_default();
                            if problem["code"] == "slot_unavailable" {
                                break;
                            }
                        }
                        Ok(r) => assert!(
                            r.status().is_server_error(),
                            "unexpected answer to a booking: {}",
                            r.status()
                        ),
                        Err(_) => {}
                    }
                    assert!(
                        sent.elapsed() < Duration::from_secs(60),
                        "a booking was never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acknowledged
        });
        Self { stop, task }
    }

    /// Stops and returns the ids of the acknowledged bookings.
    pub async fn stop(self) -> Vec<Uuid> {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("booker")
    }
}

/// A day's free places, as `GET /v1/slots` gives them.
enum Day {
    /// The start of each free place's slot.
    Free(Vec<String>),
    /// The day is beyond the lab's appointment window (422).
    Beyond,
    /// No answer (the gateway restarting).
    Unreachable,
}

/// The lab's free places `days` ahead.
async fn free_slots(client: &reqwest::Client, gateway: &str, token: &str, days: i64) -> Day {
    let date = (time::OffsetDateTime::now_utc() + time::Duration::days(days)).date();
    let answer = client
        .get(format!("{gateway}/v1/slots?date={date}&kind=lab"))
        .bearer_auth(token)
        .send()
        .await;
    let Ok(answer) = answer else { return Day::Unreachable };
    match answer.status().as_u16() {
        200 => {}
        422 => return Day::Beyond,
        _ => return Day::Unreachable,
    }
    let Ok(list) = answer.json::<serde_json::Value>().await else {
        return Day::Unreachable;
    };
    let mut starts = Vec::new();
    for slot in list["items"].as_array().into_iter().flatten() {
        for _ in 0..slot["free"].as_u64().unwrap_or(0) {
            starts.push(slot["start"].as_str().unwrap_or_default().to_owned());
        }
    }
    Day::Free(starts)
}

/// A tablet reading patients until stopped, each read with its own request id (`X-Request-Id`),
/// which the gateway writes into the read's audit record.
#[derive(Debug)]
pub struct Reader {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Uuid>>,
}

impl Reader {
    /// Starts reading the patients of `visits`, in turn, through `gateway`.
    pub fn start(client: reqwest::Client, gateway: String, token: String, visits: Vec<Visit>) -> Self {
        assert!(!visits.is_empty(), "no patient to read");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut answered = Vec::new();
            let mut i = 0usize;
            while !AtomicBool::load(&flag, Ordering::Acquire) {
                let patient = visits[i % visits.len()].patient;
                i += 1;
                let request_id = Uuid::now_v7();
                let answer = client
                    .get(format!("{gateway}/v1/patients/{patient}"))
                    .bearer_auth(&token)
                    .header("x-request-id", request_id.to_string())
                    .send()
                    .await;
                // Answered means the whole body arrived: a connection cut mid-answer is no answer.
                match answer {
                    Ok(r) if r.status().as_u16() == 200 => {
                        if r.bytes().await.is_ok() {
                            answered.push(request_id);
                        }
                    }
                    Ok(r) => assert!(
                        r.status().is_server_error(),
                        "unexpected answer to a read: {}",
                        r.status()
                    ),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            answered
        });
        Self { stop, task }
    }

    /// Stops and returns the request ids of the reads answered 200.
    pub async fn stop(self) -> Vec<Uuid> {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("reader")
    }
}

/// Whether a request read or wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GET /v1/patients/{id}`.
    Read,
    /// `POST /v1/collections` (one attempt; a write is retried with its key until acknowledged).
    Write,
}

/// What one request of a [`Load`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer, with whether it carried `Retry-After`.
    Status(u16, bool),
    /// No connection (refused: the gateway is not listening).
    Refused,
    /// Any other transport failure (reset, timeout, a connection closed mid-answer), with its text.
    Broken(String),
}

impl Outcome {
    /// A 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Status(s, _) if (200..300).contains(s))
    }

    /// What a tablet may retry safely and quickly: no connection, or 503 with `Retry-After`.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Refused | Self::Status(503, true))
    }
}

/// One request of a [`Load`].
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent.
    pub at: Instant,
    /// How long until its answer (or failure).
    pub latency: Duration,
    /// Read or write.
    pub op: Op,
    /// What it got.
    pub outcome: Outcome,
}

/// Figures over a window of samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Requests sent.
    pub requests: usize,
    /// Requests not answered 2xx.
    pub errors: usize,
    /// 99th percentile of the latency, in milliseconds.
    pub p99_ms: f64,
}

impl Figures {
    /// Of these samples.
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut latencies = Vec::new();
        let mut errors = 0;
        for s in samples {
            latencies.push(s.latency.as_secs_f64() * 1_000.0);
            if !s.outcome.is_success() {
                errors += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        let p99_ms = if latencies.is_empty() {
            0.0
        } else {
            // Nearest rank.
            let rank = ((latencies.len() as f64) * 0.99).ceil() as usize;
            latencies[rank.clamp(1, latencies.len()) - 1]
        };
        Self {
            requests: latencies.len(),
            errors,
            p99_ms,
        }
    }

    /// The line the docs copy: `fault: <name> requests=<n> errors=<n> p99_ms=<x>`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "fault: {name} requests={} errors={} p99_ms={:.1}",
            self.requests, self.errors, self.p99_ms
        )
    }
}

#[derive(Debug, Default)]
struct Recorded {
    samples: Vec<Sample>,
    acknowledged: Vec<Uuid>,
}

/// Tablets under load: `workers` loops, each sending one request every `period` (so
/// `workers / period` requests a second in all), a write every `write_every`-th request and reads
/// otherwise. A write is retried (at the worker's next write turn) with the same idempotency key and
/// body until it is acknowledged, as a tablet does (each attempt is a sample); a read is not retried. Every request is recorded, so a test
/// can take figures over the window of a fault while the load goes on.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    recorded: Arc<std::sync::Mutex<Recorded>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the load against `gateway` with the nurse's `token`, over `visits` in turn.
    pub fn start(
        client: reqwest::Client,
        gateway: String,
        token: String,
        visits: Vec<Visit>,
        workers: usize,
        period: Duration,
        write_every: usize,
    ) -> Self {
        assert!(!visits.is_empty(), "no visit to record");
        let stop = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(std::sync::Mutex::new(Recorded::default()));
        let visits = Arc::new(visits);
        let tasks = (0..workers)
            .map(|worker| {
                let (client, gateway, token) = (client.clone(), gateway.clone(), token.clone());
                let (stop, recorded, visits) = (Arc::clone(&stop), Arc::clone(&recorded), Arc::clone(&visits));
                tokio::spawn(async move {
                    // Workers start spread over one period, so that the rate is even.
                    tokio::time::sleep(
                        period * u32::try_from(worker).unwrap_or(0) / u32::try_from(workers).unwrap_or(1),
                    )
                    .await;
                    let mut i = worker;
                    let mut pending: Option<(Uuid, String, serde_json::Value)> = None;
                    let mut next = tokio::time::Instant::now();
                    while !AtomicBool::load(&stop, Ordering::Acquire) || pending.is_some() {
                        next += period;
                        // A write waiting to be acknowledged is retried at the next write turn (the
                        // tablet keeps reading meanwhile), and finished before the worker stops.
                        let stopping = AtomicBool::load(&stop, Ordering::Acquire);
                        let write = (write_every > 0 && i % write_every == 0) || (stopping && pending.is_some());
                        let visit = &visits[i % visits.len()];
                        i += 1;
                        let sent = Instant::now();
                        let (op, answer) = if write {
                            let (id, key, body) = pending.get_or_insert_with(|| collection_for(visit));
                            let answer = client
                                .post(format!("{gateway}/v1/collections"))
                                .bearer_auth(&token)
                                .header("idempotency-key", key.as_str())
                                .json(body)
                                .timeout(Duration::from_secs(60))
                                .send()
                                .await;
                            let id = *id;
                            if answer.as_ref().is_ok_and(|r| r.status().as_u16() == 201) {
                                pending = None;
                                recorded.lock().expect("load").acknowledged.push(id);
                            }
                            (Op::Write, answer)
                        } else {
                            let answer = client
                                .get(format!("{gateway}/v1/patients/{}", visit.patient))
                                .bearer_auth(&token)
                                .timeout(Duration::from_secs(60))
                                .send()
                                .await;
                            (Op::Read, answer)
                        };
                        let outcome = match answer {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let retry_after = r.headers().contains_key("retry-after");
                                // Read the body: the request is over only when its answer is.
                                let _ = r.bytes().await;
                                Outcome::Status(status, retry_after)
                            }
                            Err(e) if e.is_connect() => Outcome::Refused,
                            Err(e) => Outcome::Broken(format!("{e:?}")),
                        };
                        recorded.lock().expect("load").samples.push(Sample {
                            at: sent,
                            latency: sent.elapsed(),
                            op,
                            outcome,
                        });
                        tokio::time::sleep_until(next.max(tokio::time::Instant::now())).await;
                        if tokio::time::Instant::now() > next + period * 10 {
                            // Far behind (a long outage): start afresh rather than burst.
                            next = tokio::time::Instant::now();
                        }
                    }
                })
            })
            .collect();
        Self { stop, recorded, tasks }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.recorded.lock().expect("load").samples.clone()
    }

    /// The samples sent from `from` to `to`.
    pub fn window(&self, from: Instant, to: Instant) -> Vec<Sample> {
        self.samples()
            .into_iter()
            .filter(|s| s.at >= from && s.at < to)
            .collect()
    }

    /// The collections acknowledged so far.
    pub fn acknowledged(&self) -> Vec<Uuid> {
        self.recorded.lock().expect("load").acknowledged.clone()
    }

    /// Stops (each worker first finishes the write it is retrying) and returns every sample and the
    /// acknowledged collections.
    pub async fn stop(self) -> (Vec<Sample>, Vec<Uuid>) {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("load worker");
        }
        let recorded = std::mem::take(&mut *self.recorded.lock().expect("load"));
        (recorded.samples, recorded.acknowledged)
    }
}

/// A new collection for `visit`: its id, an idempotency key, the body.
pub fn collection_for(visit: &Visit) -> (Uuid, String, serde_json::Value) {
    let id = Uuid::now_v7();
    let body = serde_json::json!({
        "id": id, "patient_id": visit.patient, "appointment_id": visit.appointment,
        "prescription_id": visit.prescription,
        "collected_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339).expect("time"),
        "identity_checked": true, "identity_check_method": "health_card",
        "tubes": [{"barcode": format!("K{}", &Uuid::new_v4().simple().to_string()[..14].to_uppercase()), "tube_type": "EDTA"}]
    });
    (id, Uuid::new_v4().to_string(), body)
}

/// Sending a request to a real server and reading its JSON answer in one step.
pub trait ReadJson {
    /// Sends the request and reads the answer's body as `T`, whatever its status; panics when it
    /// cannot be sent or is not such JSON.
    fn read_json<T: serde::de::DeserializeOwned>(self) -> impl Future<Output = T> + Send;
}

impl ReadJson for reqwest::RequestBuilder {
    async fn read_json<T: serde::de::DeserializeOwned>(self) -> T {
        self.send()
            .await
            .expect("the request is sent")
            .json()
            .await
            .expect("a JSON answer")
    }
}
