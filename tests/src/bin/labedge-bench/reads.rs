//! Benchmarks 1 and 6a: the cached patient read against nginx and pouchdb-server.

use super::*;

impl Bench {
    /// Benchmarks 1 and 6a: the cached patient read against nginx's static file and pouchdb-server's document,
    /// alternating, same wrk, same connections.
    pub(crate) async fn reads(&mut self) -> anyhow::Result<Section> {
        let id = self.patient_id.clone();
        say("read: starting");
        let mut section = Section::new(
            "read",
            "1 and 6. Cached patient read vs nginx (static file) and pouchdb-server (document)",
            format!(
                "`wrk -t2 -c{READ_CONNECTIONS} -d{}s`, runs alternating server by server, {} runs each after a warm-up. \
                 The gateway answers `GET /v1/patients/{{id}}` with a nurse's bearer token (JWT check, revocation check \
                 and the patient from Redis, the read's audit record committed to PostgreSQL before the answer); nginx \
                 serves the same {} bytes as a static file (HTTPS with the gateway's own certificate, and plain HTTP); \
                 pouchdb-server has no TLS, so it is compared with a second gateway process serving plain HTTP. wrk, \
                 the servers, PostgreSQL and Redis share the 2 cores.",
                self.sizes.duration.as_secs(),
                self.sizes.runs,
                self.patient_bytes
            ),
        );
        let script = wrk::get_script(&self.work)?;
        let servers: Vec<(&str, String, bool)> = vec![
            (
                "gateway https",
                format!("https://127.0.0.1:{}/v1/patients/{id}", self.gw_port()?),
                true,
            ),
            (
                "nginx https",
                format!("https://127.0.0.1:{}/v1/patients/{id}", self.nginx_ports.0),
                false,
            ),
            ("gateway http", format!("{}/v1/patients/{id}", self.plain_url), true),
            (
                "nginx http",
                format!("http://127.0.0.1:{}/v1/patients/{id}", self.nginx_ports.1),
                false,
            ),
            (
                "pouchdb-server http",
                format!("http://127.0.0.1:{}/bench/{id}", self.pouch_port),
                false,
            ),
        ];
        let mut results: Vec<Vec<wrk::WrkRun>> = vec![Vec::new(); servers.len()];
        let (mut rss_tls, mut rss_plain) = (Vec::new(), Vec::new());
        let token = self.token(self.nurse()?).await?;
        for (name, url, _) in &servers {
            say(&format!("read: warming up {name}"));
            let auth = vec![format!("Authorization: Bearer {token}")];
            wrk::run(url, READ_CONNECTIONS, self.sizes.warmup, &script, &auth).await?;
        }
        for run in 0..self.sizes.runs {
            // A fresh token each round: a full run outlasts an access token.
            let token = self.token(self.nurse()?).await?;
            let auth = vec![format!("Authorization: Bearer {token}")];
            for (i, (name, url, is_gateway)) in servers.iter().enumerate() {
                self.reset_gateway_peaks();
                let perf = if run == 0 && i == 0 {
                    self.perf_start("read")
                } else {
                    Vec::new()
                };
                let result = wrk::run(url, READ_CONNECTIONS, self.sizes.duration, &script, &auth).await?;
                Self::perf_stop(perf).await;
                if *is_gateway {
                    let plain = url.starts_with("http:");
                    let peak = self.gateway_peak(plain).unwrap_or(f64::NAN);
                    if plain { &mut rss_plain } else { &mut rss_tls }.push(peak);
                }
                say(&format!(
                    "read {}/{} {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms{}",
                    run + 1,
                    self.sizes.runs,
                    result.ok_per_s,
                    result.p50_ms,
                    result.p99_ms,
                    if result.non_2xx + result.socket_errors > 0 {
                        format!(", {} errors", result.non_2xx + result.socket_errors)
                    } else {
                        String::new()
                    }
                ));
                section
                    .runs
                    .push(serde_json::json!({"server": name, "run": run + 1, "wrk": result}));
                results[i].push(result);
            }
        }
        for (i, (name, _, _)) in servers.iter().enumerate() {
            let r = &results[i];
            section.row(
                name,
                &[
                    ("req/s", r.iter().map(|x| x.ok_per_s).collect()),
                    ("p50 ms", r.iter().map(|x| x.p50_ms).collect()),
                    ("p99 ms", r.iter().map(|x| x.p99_ms).collect()),
                    ("bytes/response", r.iter().map(|x| x.bytes_per_response).collect()),
                ],
            );
            let errors: u64 = r.iter().map(|x| x.non_2xx + x.socket_errors).sum();
            if errors > 0 {
                section
                    .notes
                    .push(format!("{name}: {errors} error answers or socket errors over the runs"));
            }
        }
        let ratio = |a: &str, b: &str| Some(section.median(a, "req/s")? / section.median(b, "req/s")?);
        let https = ratio("gateway https", "nginx https");
        let http = ratio("gateway http", "nginx http");
        let pouch = ratio("gateway http", "pouchdb-server http");
        for (name, value) in [
            ("gateway / nginx, HTTPS (req/s)", https),
            ("gateway / nginx, plain HTTP (req/s)", http),
            ("gateway / pouchdb-server, plain HTTP (req/s)", pouch),
        ] {
            if let Some(v) = value {
                section.ratios.push((name.into(), v));
            }
        }
        self.memory.push(("read, HTTPS gateway".into(), rss_tls));
        self.memory.push(("read, plain-HTTP gateway".into(), rss_plain));
        let check = self.check();
        self.targets.push(target(
            "read",
            "gateway / nginx req/s (HTTPS)",
            Goal::AtLeast,
            0.5,
            https,
            "×",
            check,
        ));
        self.targets.push(target(
            "read",
            "gateway p99 at 64 connections",
            Goal::Below,
            10.0,
            section.median("gateway https", "p99 ms"),
            "ms",
            check,
        ));
        self.targets.push(report::info(
            "peer read",
            "gateway / pouchdb-server req/s (HTTP)",
            pouch,
            "×",
        ));
        Ok(section)
    }
}
