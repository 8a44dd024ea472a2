//! Load with wrk (Debian's package): the same tool, threads and connections for every server. Each run
//! ends with a Lua `done()` hook printing the figures as one JSON line, so nothing is parsed from
//! wrk's human-readable text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

/// Prints wrk's figures as JSON (latencies in microseconds). Shared by every script.
pub const DONE: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f,"max":%.0f,"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"#;

/// A GET with fixed headers: no `request()` hook, so wrk keeps its precomputed request (its fast path).
pub fn get_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("get.lua");
    std::fs::write(&path, DONE)?;
    Ok(path)
}

/// One visit a collection may be recorded for.
#[derive(Clone, Debug)]
pub struct VisitIds {
    /// The appointment.
    pub appointment: uuid::Uuid,
    /// Its patient.
    pub patient: uuid::Uuid,
    /// Its prescription.
    pub prescription: uuid::Uuid,
}

/// `POST /v1/collections` with a unique collection id, idempotency key and barcodes per request:
/// `<nonce>-<thread>-4000-8000-<counter>`, the thread numbered by `setup()`, the nonce new per run.
pub fn post_script(
    dir: &Path,
    name: &str,
    token: &str,
    nonce: &str,
    visits: &[VisitIds],
    tube_types: (&str, &str),
    collected_at: &str,
) -> anyhow::Result<PathBuf> {
    let mut lua = String::from("local visits = {\n");
    for v in visits {
        lua.push_str(&format!(
            "  {{\"{}\", \"{}\", \"{}\"}},\n",
            v.appointment, v.patient, v.prescription
        ));
    }
    lua.push_str("}\n");
    lua.push_str(&format!(
        r#"
local token = "{token}"
local nonce = "{nonce}"
local nonce_upper = string.upper(nonce)
local tube_a = "{a}"
local tube_b = "{b}"
local collected_at = "{collected_at}"
local counter = 0
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
  local v = visits[(counter * 7 + tid) % #visits + 1]
  local id = string.format("%s-%04x-4000-8000-%012x", nonce, tid, counter)
  local code = string.format("%s%02X%08X", nonce_upper, tid, counter)
  headers["Idempotency-Key"] = id
  local body = '{{"id":"' .. id .. '","patient_id":"' .. v[2] .. '","appointment_id":"' .. v[1] ..
    '","prescription_id":"' .. v[3] .. '","collected_at":"' .. collected_at ..
    '","identity_checked":true,"identity_check_method":"health_card","tubes":[{{"barcode":"A' .. code ..
    '","tube_type":"' .. tube_a .. '"}},{{"barcode":"B' .. code .. '","tube_type":"' .. tube_b .. '"}}]}}'
  return wrk.format("POST", "/v1/collections", headers, body)
end
"#,
        a = tube_types.0,
        b = tube_types.1,
    ));
    lua.push_str(DONE);
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// The figures of one wrk run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WrkRun {
    /// Responses received.
    pub requests: u64,
    /// Of which with a status ≥ 400.
    pub non_2xx: u64,
    /// Socket errors (connect, read, write) and timeouts.
    pub socket_errors: u64,
    /// Successful responses per second.
    pub ok_per_s: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// Bytes received per response (headers included).
    pub bytes_per_response: f64,
}

/// Runs wrk against `url` and returns its figures.
pub async fn run(
    url: &str,
    connections: u32,
    duration: Duration,
    script: &Path,
    headers: &[String],
) -> anyhow::Result<WrkRun> {
    let threads = connections.clamp(1, 2);
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script);
    for header in headers {
        command.arg("-H").arg(header);
    }
    command.arg(url);
    let output = command.output().await.context("run wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("BENCHJSON ")) else {
        bail!(
            "wrk gave no figures ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let v: serde_json::Value = serde_json::from_str(line).context("wrk's figures")?;
    let n = |k: &str| v[k].as_f64().unwrap_or_default();
    let seconds = n("duration_us") / 1e6;
    let requests = n("requests") as u64;
    let non_2xx = n("status") as u64;
    Ok(WrkRun {
        requests,
        non_2xx,
        socket_errors: (n("connect") + n("read") + n("write") + n("timeout")) as u64,
        ok_per_s: if seconds > 0.0 {
            requests.saturating_sub(non_2xx) as f64 / seconds
        } else {
            0.0
        },
        p50_ms: n("p50") / 1000.0,
        p90_ms: n("p90") / 1000.0,
        p99_ms: n("p99") / 1000.0,
        max_ms: n("max") / 1000.0,
        seconds,
        bytes_per_response: if requests > 0 {
            n("bytes") / requests as f64
        } else {
            0.0
        },
    })
}
