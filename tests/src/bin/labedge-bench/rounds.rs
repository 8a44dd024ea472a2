//! Benchmark 5: a home sampler's round of 30 visits.

use super::*;

impl Bench {
    /// Benchmark 5: a home sampler's round of 30 visits.
    pub(crate) async fn rounds(&mut self) -> anyhow::Result<Section> {
        let sampler = self.sampler.clone().context("no sampler tablet")?;
        let url = format!(
            "https://127.0.0.1:{}/v1/rounds?date={}",
            self.gw_port()?,
            self.round_date
        );
        say("rounds: starting");
        let mut section = Section::new(
            "rounds",
            "5. Round pull",
            format!(
                "`GET /v1/rounds?date={}` by the home sampler whose round has {ROUND_VISITS} visits (each with patient, \
                 address, prescriptions and tube plan; one audit record per visit committed before the answer), \
                 `wrk -t2 -c{ROUND_CONNECTIONS} -d{}s` (a lab's home samplers pulling at once), {} runs over HTTPS.",
                self.round_date,
                self.sizes.duration.as_secs(),
                self.sizes.runs
            ),
        );
        let token = self.token(&sampler).await?;
        let round: serde_json::Value = self
            .client()?
            .get(format!("{}/v1/rounds?date={}", self.gw_url, self.round_date))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let visits = round["visits"].as_array().map_or(0, Vec::len);
        if visits as i64 != ROUND_VISITS {
            bail!("the round has {visits} visits, not {ROUND_VISITS}");
        }
        let script = wrk::get_script(&self.work)?;
        wrk::run(
            &url,
            ROUND_CONNECTIONS,
            self.sizes.warmup,
            &script,
            &[format!("Authorization: Bearer {token}")],
        )
        .await?;
        let (mut results, mut rss) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.runs {
            let token = self.token(&sampler).await?;
            self.reset_gateway_peaks();
            let perf = if run == 0 {
                self.perf_start("rounds")
            } else {
                Vec::new()
            };
            let r = wrk::run(
                &url,
                ROUND_CONNECTIONS,
                self.sizes.duration,
                &script,
                &[format!("Authorization: Bearer {token}")],
            )
            .await?;
            Self::perf_stop(perf).await;
            rss.push(self.gateway_peak(false).unwrap_or(f64::NAN));
            say(&format!(
                "round {}/{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} B",
                run + 1,
                self.sizes.runs,
                r.ok_per_s,
                r.p50_ms,
                r.p99_ms,
                r.bytes_per_response as u64
            ));
            if r.non_2xx + r.socket_errors > 0 {
                section
                    .notes
                    .push(format!("run {}: {} errors", run + 1, r.non_2xx + r.socket_errors));
            }
            section.runs.push(serde_json::json!({"run": run + 1, "wrk": r}));
            results.push(r);
        }
        section.row(
            "round of 30 visits",
            &[
                ("req/s", results.iter().map(|x| x.ok_per_s).collect()),
                ("p50 ms", results.iter().map(|x| x.p50_ms).collect()),
                ("p99 ms", results.iter().map(|x| x.p99_ms).collect()),
                ("bytes/response", results.iter().map(|x| x.bytes_per_response).collect()),
            ],
        );
        self.memory.push(("rounds".into(), rss));
        self.targets.push(target(
            "rounds",
            "round pull p99",
            Goal::Below,
            5.0,
            section.median("round of 30 visits", "p99 ms"),
            "ms",
            self.check(),
        ));
        Ok(section)
    }
}
