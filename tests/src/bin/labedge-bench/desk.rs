//! Benchmark 9: the desk (issue 15): the free-slot search, and bookings beside collections.

use diesel_async::SimpleAsyncConnection;

use super::*;

/// Connections of the desk's runs (a lab's desk and tablets, as the write benchmark's first level).
const DESK_CONNECTIONS: u32 = 16;

/// `POST /v1/appointments`: a lab visit with a unique id and idempotency key per request, for one of
/// `patients`, at one of `starts` (the slots of the lab's appointment window).
/// `first` is where the slot counter starts: the requests of the earlier runs, so that each run
/// books places the earlier runs left free (a counter restarting at 0 made later runs meet full
/// slots and measure 409 answers instead of bookings).
fn booking_script(
    dir: &Path,
    token: &str,
    nonce: &str,
    patients: &[Uuid],
    starts: &[String],
    first: u64,
) -> anyhow::Result<PathBuf> {
    let mut lua = String::from("local patients = {\n");
    for p in patients {
        lua.push_str(&format!("  \"{p}\",\n"));
    }
    lua.push_str("}\nlocal starts = {\n");
    for s in starts {
        lua.push_str(&format!("  \"{s}\",\n"));
    }
    lua.push_str("}\n");
    lua.push_str(&format!(
        r#"
local token = "{token}"
local nonce = "{nonce}"
local counter = {first}
local threads = 0
local headers = {{}}

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  headers["Authorization"] = "Bearer " .. token
  headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local id = string.format("%s-%04x-4000-8000-%012x", nonce, tid, counter)
  headers["Idempotency-Key"] = id
  local body = '{{"id":"' .. id .. '","patient_id":"' .. patients[(counter * 7 + tid) % #patients + 1] ..
    '","kind":"lab","scheduled_at":"' .. starts[(counter * 13 + tid) % #starts + 1] .. '"}}'
  return wrk.format("POST", "/v1/appointments", headers, body)
end
"#
    ));
    lua.push_str(wrk::DONE);
    let path = dir.join("book.lua");
    std::fs::write(&path, lua)?;
    Ok(path)
}

impl Bench {
    /// Benchmark 9: `GET /v1/slots` at 16 connections (p99 target 10 ms), then bookings and
    /// collections alternating at 16 connections (bookings must keep up with collections).
    pub(crate) async fn desk(&mut self) -> anyhow::Result<Section> {
        say("desk: starting");
        let mut section = Section::new(
            "desk",
            "9. The desk: free slots and bookings",
            format!(
                "The lab's booking rules set to 07:00–12:00 and 14:00–18:00 every day in 15-minute slots (36 a day) \
                 of 10 places, as a large sampling room; the cloud's appointment window 90 days ahead, the most its \
                 config allows, and the desk books within it (32,400 places, more than a run books). Slots: `GET /v1/slots?date=<tomorrow>&kind=lab` with a \
                 nurse's token, `wrk -t2 -c{DESK_CONNECTIONS} -d{d}s` (each answer reads the lab's rules and the day's \
                 bookings, and lays out the slots in the gateway). Bookings: `POST /v1/appointments` with a unique id and idempotency key per \
                 request, a patient and a slot of the coming year picked by a counter, the run's bookings deleted after \
                 it; collections: the write \
                 benchmark's `POST /v1/collections`; both at {DESK_CONNECTIONS} connections, alternating, {runs} runs \
                 after a warm-up, the cloud stopped as in the write benchmark.",
                d = self.sizes.duration.as_secs(),
                runs = self.sizes.runs
            ),
        );
        self.stop_cloud().await;
        let mut edge = connect(&self.edge_db).await?;
        let hours = r#"[["07:00","12:00"],["14:00","18:00"]]"#;
        let week: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| format!("\"{d}\":{hours}"))
            .collect();
        edge.batch_execute(&format!(
            "UPDATE labs SET slot_minutes = 15, lab_places = 10, opening_hours = '{{{}}}'",
            week.join(",")
        ))
        .await?;
        let visits = visits(&mut edge, 500).await?;
        let patients: Vec<Uuid> = visits.iter().map(|v| v.patient).collect();
        let tubes = tube_types(&mut edge).await?;
        let nurse = self.nurse()?.clone();
        let token = self.token(&nurse).await?;
        let gateway = format!("https://127.0.0.1:{}", self.gw_port()?);
        let tomorrow = (OffsetDateTime::now_utc() + time::Duration::days(1)).date();
        let mut starts = Vec::new();
        // The days of the lab's appointment window: the gateway answers 422 for the first day beyond.
        for day in 1..=366 {
            let date = (OffsetDateTime::now_utc() + time::Duration::days(day)).date();
            let answer = self
                .client()?
                .get(format!("{gateway}/v1/slots?date={date}&kind=lab"))
                .bearer_auth(&token)
                .send()
                .await?;
            if answer.status() == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
                break;
            }
            let list: mobile_contracts::SlotList = answer.error_for_status()?.json().await?;
            starts.extend(
                list.items
                    .iter()
                    .map(|s| s.start.format(&Rfc3339))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        if starts.is_empty() {
            bail!("the gateway offers no slot in the lab's appointment window");
        }
        let collected_at = (OffsetDateTime::now_utc() - time::Duration::minutes(10)).format(&Rfc3339)?;
        let slots_url = format!("{gateway}/v1/slots?date={tomorrow}&kind=lab");
        let get = wrk::get_script(&self.work)?;
        let (mut slot_runs, mut book_runs, mut collect_runs) = (Vec::new(), Vec::new(), Vec::new());
        let mut booking_requests = 0;
        for run in 0..=self.sizes.runs {
            let duration = if run == 0 {
                self.sizes.warmup
            } else {
                self.sizes.duration
            };
            let token = self.token(&nurse).await?;
            let auth = [format!("Authorization: Bearer {token}")];
            let slots = wrk::run(&slots_url, DESK_CONNECTIONS, duration, &get, &auth).await?;
            let nonce = Uuid::new_v4().simple().to_string()[..8].to_owned();
            let book = booking_script(&self.work, &token, &nonce, &patients, &starts, booking_requests)?;
            let booked = wrk::run(
                &format!("{gateway}/v1/appointments"),
                DESK_CONNECTIONS,
                duration,
                &book,
                &[],
            )
            .await?;
            booking_requests += booked.requests;
            let stored = scalar(
                &mut edge,
                &format!("SELECT count(*) AS n FROM appointments WHERE id::text LIKE '{nonce}-%'"),
            )
            .await?;
            // The run's bookings leave with it: at 2,000 bookings/s the window's 32,400 places fill up
            // within two runs, and later runs would measure refusals (each looks 14 days ahead for
            // free slots), not bookings. Every run finds the window as the seed left it.
            edge.batch_execute(&format!("DELETE FROM appointments WHERE id::text LIKE '{nonce}-%'"))
                .await?;
            let nonce = Uuid::new_v4().simple().to_string()[..8].to_owned();
            let post = wrk::post_script(
                &self.work,
                "desk-collect",
                &token,
                &nonce,
                &visits,
                (&tubes.0, &tubes.1),
                &collected_at,
            )?;
            let collected = wrk::run(
                &format!("{gateway}/v1/collections"),
                DESK_CONNECTIONS,
                duration,
                &post,
                &[],
            )
            .await?;
            if run == 0 {
                continue;
            }
            let acknowledged = booked.requests.saturating_sub(booked.non_2xx);
            say(&format!(
                "desk {run}/{}: slots {:.0} req/s p99 {:.2} ms; bookings {:.0}/s p99 {:.2} ms ({acknowledged} acknowledged, \
                 {stored} stored); collections {:.0}/s p99 {:.2} ms",
                self.sizes.runs,
                slots.ok_per_s,
                slots.p99_ms,
                booked.ok_per_s,
                booked.p99_ms,
                collected.ok_per_s,
                collected.p99_ms
            ));
            for (what, r) in [("slots", &slots), ("bookings", &booked), ("collections", &collected)] {
                if r.non_2xx + r.socket_errors > 0 {
                    section.notes.push(format!(
                        "run {run}, {what}: {} error answers, {} socket errors",
                        r.non_2xx, r.socket_errors
                    ));
                }
            }
            if (stored as u64) < acknowledged {
                bail!("{acknowledged} bookings acknowledged but {stored} stored");
            }
            section.runs.push(serde_json::json!({
                "run": run, "slots": slots, "bookings": booked, "collections": collected, "bookings_stored": stored
            }));
            slot_runs.push(slots);
            book_runs.push(booked);
            collect_runs.push(collected);
        }
        for (label, runs) in [
            ("free slots (GET /v1/slots)", &slot_runs),
            ("bookings (POST /v1/appointments)", &book_runs),
            ("collections (POST /v1/collections)", &collect_runs),
        ] {
            section.row(
                label,
                &[
                    ("answers/s", runs.iter().map(|x| x.ok_per_s).collect()),
                    ("p50 ms", runs.iter().map(|x| x.p50_ms).collect()),
                    ("p99 ms", runs.iter().map(|x| x.p99_ms).collect()),
                ],
            );
        }
        let ratios: Vec<f64> = book_runs
            .iter()
            .zip(&collect_runs)
            .map(|(b, c)| {
                if c.ok_per_s > 0.0 {
                    b.ok_per_s / c.ok_per_s
                } else {
                    f64::NAN
                }
            })
            .collect();
        section.row("bookings per collection (same run)", &[("ratio", ratios)]);
        let check = self.check();
        self.targets.push(target(
            "desk",
            &format!("free-slot search p99 at {DESK_CONNECTIONS} connections"),
            Goal::Below,
            10.0,
            section.median("free slots (GET /v1/slots)", "p99 ms"),
            "ms",
            check,
        ));
        self.targets.push(target(
            "desk",
            "bookings/s per collection/s (same runs)",
            Goal::AtLeast,
            1.0,
            section.median("bookings per collection (same run)", "ratio"),
            "×",
            check,
        ));
        Ok(section)
    }
}
