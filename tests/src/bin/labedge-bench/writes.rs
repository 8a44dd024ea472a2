//! Benchmark 2: acknowledged writes, each checked durable.

use super::*;

impl Bench {
    /// Benchmark 2: acknowledged writes with unique ids at 16 and 64 connections, each checked durable.
    pub(crate) async fn writes(&mut self) -> anyhow::Result<Section> {
        say("write: starting");
        let mut section = Section::new(
            "write",
            "2. Write acknowledgement",
            format!(
                "`POST /v1/collections` (2 tubes) with a unique collection id, idempotency key and barcodes per request \
                 (wrk's `request()` hook: a counter and a per-thread number behind a per-run random prefix), \
                 `wrk -t2 -cN -d{}s`, {} runs per connection count, alternating 16 and 64. Each 201 means one \
                 PostgreSQL transaction committed with `synchronous_commit = on` (collection, tubes, outbox entry, \
                 idempotency record, audit record). After each run the collections under the run's prefix are counted: \
                 at least every acknowledged one must be there. The cloud API is stopped meanwhile, as in an outage \
                 (the cloud runs elsewhere in production; here it would take the same 2 cores).",
                self.sizes.duration.as_secs(),
                self.sizes.runs
            ),
        );
        self.stop_cloud().await;
        let mut edge = connect(&self.edge_db).await?;
        let visits = visits(&mut edge, 500).await?;
        let tubes = tube_types(&mut edge).await?;
        let nurse = self.nurse()?.clone();
        let collected_at = (OffsetDateTime::now_utc() - time::Duration::minutes(10)).format(&Rfc3339)?;
        let mut results: Vec<Vec<wrk::WrkRun>> = vec![Vec::new(); WRITE_CONNECTIONS.len()];
        let mut rss: Vec<Vec<f64>> = vec![Vec::new(); WRITE_CONNECTIONS.len()];
        let mut durable_ok = true;
        let url = format!("https://127.0.0.1:{}/v1/collections", self.gw_port()?);
        for run in 0..=self.sizes.runs {
            // Run 0 is the warm-up.
            for (i, &connections) in WRITE_CONNECTIONS.iter().enumerate() {
                let token = self.token(&nurse).await?;
                let nonce = Uuid::new_v4().simple().to_string()[..8].to_owned();
                let script = wrk::post_script(
                    &self.work,
                    &format!("post-{connections}"),
                    &token,
                    &nonce,
                    &visits,
                    (&tubes.0, &tubes.1),
                    &collected_at,
                )?;
                let duration = if run == 0 {
                    self.sizes.warmup
                } else {
                    self.sizes.duration
                };
                self.reset_gateway_peaks();
                let perf = if run == 1 {
                    self.perf_start(&format!("write-{connections}"))
                } else {
                    Vec::new()
                };
                let r = wrk::run(&url, connections, duration, &script, &[]).await?;
                Self::perf_stop(perf).await;
                let peak = self.gateway_peak(false).unwrap_or(f64::NAN);
                let acknowledged = r.requests.saturating_sub(r.non_2xx);
                let committed = scalar(
                    &mut edge,
                    &format!("SELECT count(*) AS n FROM collections WHERE id::text LIKE '{nonce}-%'"),
                )
                .await?;
                let durable = committed >= acknowledged as i64;
                if run == 0 {
                    continue;
                }
                durable_ok &= durable;
                say(&format!(
                    "write {}/{} at {connections} connections: {:.0} acknowledged/s, p50 {:.2} ms, p99 {:.2} ms; \
                     {acknowledged} acknowledged, {committed} committed{}",
                    run,
                    self.sizes.runs,
                    r.ok_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    if r.non_2xx + r.socket_errors > 0 {
                        format!(", {} errors", r.non_2xx + r.socket_errors)
                    } else {
                        String::new()
                    }
                ));
                if r.non_2xx + r.socket_errors > 0 {
                    section.notes.push(format!(
                        "run {run} at {connections} connections: {} error answers, {} socket errors",
                        r.non_2xx, r.socket_errors
                    ));
                }
                section.runs.push(serde_json::json!({
                    "run": run, "connections": connections, "wrk": r, "acknowledged": acknowledged, "committed": committed,
                    "durable": durable
                }));
                results[i].push(r);
                rss[i].push(peak);
            }
        }
        for (i, connections) in WRITE_CONNECTIONS.iter().enumerate() {
            let r = &results[i];
            let label = format!("{connections} connections");
            section.row(
                &label,
                &[
                    ("acknowledged writes/s", r.iter().map(|x| x.ok_per_s).collect()),
                    ("p50 ms", r.iter().map(|x| x.p50_ms).collect()),
                    ("p99 ms", r.iter().map(|x| x.p99_ms).collect()),
                ],
            );
            let check = self.check();
            self.targets.push(target(
                "write",
                &format!("acknowledged writes/s at {connections} connections"),
                Goal::AtLeast,
                2000.0,
                section.median(&label, "acknowledged writes/s"),
                "/s",
                check,
            ));
            self.targets.push(target(
                "write",
                &format!("write p99 at {connections} connections"),
                Goal::Below,
                20.0,
                section.median(&label, "p99 ms"),
                "ms",
                check,
            ));
            self.memory
                .push((format!("write, {connections} connections"), rss[i].clone()));
        }
        section.notes.push(if durable_ok {
            "every acknowledged write was found committed after its run".into()
        } else {
            "DURABILITY CHECK FAILED: fewer collections committed than acknowledged (see runs)".into()
        });
        if !durable_ok {
            bail!("acknowledged writes missing from the database");
        }
        Ok(section)
    }
}
