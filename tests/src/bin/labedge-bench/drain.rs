//! Benchmarks 3 and 6b: the backlog drain after an outage, and PouchDB's replication of the same
//! mutations.

use super::*;

impl Bench {
    pub(crate) async fn pending(&self, edge: &mut diesel_async::AsyncPgConnection) -> anyhow::Result<i64> {
        scalar(edge, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").await
    }

    /// Benchmark 3: the backlog drain after an outage, against a bulk COPY of the same rows into the
    /// same cloud database.
    pub(crate) async fn drain(&mut self) -> anyhow::Result<Section> {
        let n = self.sizes.backlog;
        say("drain: starting");
        let mut section = Section::new(
            "drain",
            "3. Backlog drain vs bulk COPY",
            format!(
                "Each run: the cloud API is stopped; {n} collections (2 tubes each) are committed in the gateway's \
                 database as its write path leaves them (collection, tubes, outbox entry); the cloud stays down {} s \
                 in all (the relay backs off and its circuit opens, as in an outage); then the API starts and the run \
                 is timed until the outbox is empty. Every mutation must then be in the cloud exactly once (its \
                 `applied_mutations` row, its collection, outcome `applied` in the outbox, no dead letter). The \
                 reference copies the same rows (own ids and barcodes: the originals are taken) into the same cloud \
                 database with `psql \\copy` in one transaction: collections, tubes, `applied_mutations` and audit \
                 records, as the intake writes them. \"Drain\" counts from the first batch the cloud applied; \
                 \"total\" from the API's start. Relay batches of {RELAY_BATCH}.",
                self.sizes.outage.as_secs()
            ),
        );
        let mut edge = connect(&self.edge_db).await?;
        let mut cloud = connect(&self.cloud_db).await?;
        // Start from an empty outbox.
        let waited = Instant::now();
        while self.pending(&mut edge).await? > 0 {
            if waited.elapsed() > self.sizes.patience {
                bail!("the outbox did not empty before the drain benchmark");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let nurse = self.nurse()?.clone();
        let staff_id: Uuid = texts(
            &mut edge,
            &format!("SELECT id::text AS t FROM staff WHERE login = '{}'", nurse.login),
        )
        .await?
        .into_iter()
        .next()
        .context("nurse")?
        .parse()?;
        let author = Author {
            lab_id: self.lab.id,
            staff_id,
            device_id: nurse.device_id.parse()?,
            lab_code: self.lab.code.clone(),
        };
        let visits = visits(&mut edge, 2_000).await?;
        let tubes = tube_types(&mut edge).await?;
        let nonce = &Uuid::new_v4().simple().to_string()[..8];
        let mut figures: Vec<[f64; 7]> = Vec::new();
        let mut rss = Vec::new();
        for run in 0..self.sizes.heavy_runs {
            let set = u16::try_from(run)?;
            let queued = data::collections(n, nonce, set, &visits, (&tubes.0, &tubes.1), &author)?;
            let copied = data::collections(n, nonce, set + 0x100, &visits, (&tubes.0, &tubes.1), &author)?;
            if run == 0 {
                let file = self.work.join("mutations.ndjson");
                data::documents_file(&file, &queued)?;
                self.documents = Some(file);
            }
            let edge_script = data::edge_backlog_script(&self.work, &queued, &author)?;
            drop(queued);

            say(&format!(
                "drain {}/{}: stopping the cloud, queueing {n} collections",
                run + 1,
                self.sizes.heavy_runs
            ));
            self.stop_cloud().await;
            let stopped = Instant::now();
            let queue_s = data::psql_script(&self.edge_db, &edge_script)?.as_secs_f64();
            let pending = self.pending(&mut edge).await?;
            if pending < n as i64 {
                bail!("only {pending} entries pending after queueing {n}");
            }
            let rest = self
                .sizes
                .outage
                .saturating_sub(stopped.elapsed())
                .max(Duration::from_secs(1));
            tokio::time::sleep(rest).await;

            self.reset_gateway_peaks();
            let perf = if run == 0 { self.perf_start("drain") } else { Vec::new() };
            let started_wall = OffsetDateTime::now_utc();
            let started = Instant::now();
            self.start_cloud().await?;
            let ready_s = started.elapsed().as_secs_f64();
            loop {
                if self.pending(&mut edge).await? == 0 {
                    break;
                }
                if started.elapsed() > self.sizes.patience {
                    bail!("the outbox did not drain in {:?}", self.sizes.patience);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let total_s = started.elapsed().as_secs_f64();
            rss.push(self.gateway_peak(false).unwrap_or(f64::NAN));
            Self::perf_stop(perf).await;

            let prefix = format!("{nonce}-{set:04x}");
            let applied_cloud = scalar(
                &mut cloud,
                &format!("SELECT count(*) AS n FROM applied_mutations WHERE mutation_id::text LIKE '{prefix}-4000-8000-%' AND outcome = 'applied'"),
            )
            .await?;
            let collections_cloud = scalar(
                &mut cloud,
                &format!("SELECT count(*) AS n FROM collections WHERE id::text LIKE '{prefix}-4000-a000-%'"),
            )
            .await?;
            let applied_edge = scalar(
                &mut edge,
                &format!(
                    "SELECT count(*) AS n FROM outbox WHERE mutation_id::text LIKE '{prefix}-%' AND outcome = 'applied'"
                ),
            )
            .await?;
            let dead = scalar(&mut edge, "SELECT count(*) AS n FROM dead_letters").await?;
            let first_applied_us = scalar(
                &mut cloud,
                &format!(
                    "SELECT (extract(epoch FROM min(applied_at)) * 1000000)::bigint AS n FROM applied_mutations \
                     WHERE mutation_id::text LIKE '{prefix}-%'"
                ),
            )
            .await?;
            let last_sent_us = scalar(
                &mut edge,
                &format!(
                    "SELECT (extract(epoch FROM max(sent_at)) * 1000000)::bigint AS n FROM outbox WHERE mutation_id::text LIKE '{prefix}-%'"
                ),
            )
            .await?;
            let start_us = (started_wall.unix_timestamp_nanos() / 1000) as i64;
            let wait_s = (first_applied_us - start_us) as f64 / 1e6;
            let drain_s = (last_sent_us - first_applied_us) as f64 / 1e6;
            let once =
                applied_cloud == n as i64 && collections_cloud == n as i64 && applied_edge == n as i64 && dead == 0;
            if !once {
                section.notes.push(format!(
                    "run {}: NOT exactly once: {applied_cloud} applied in the cloud, {collections_cloud} collections, \
                     {applied_edge} `applied` outcomes at the gateway, {dead} dead letters (expected {n})",
                    run + 1
                ));
            }

            let copy_script = data::cloud_copy_script(&self.work, &copied, &author)?;
            drop(copied);
            let copy_s = data::psql_script(&self.cloud_db, &copy_script)?.as_secs_f64();
            let copied_rows = scalar(
                &mut cloud,
                &format!(
                    "SELECT count(*) AS n FROM applied_mutations WHERE mutation_id::text LIKE '{nonce}-{:04x}-%'",
                    set + 0x100
                ),
            )
            .await?;
            if copied_rows != n as i64 {
                bail!("COPY stored {copied_rows} of {n} mutations");
            }
            say(&format!(
                "drain {}/{}: total {total_s:.1} s (cloud ready {ready_s:.1} s, first batch after {wait_s:.1} s, drain \
                 {drain_s:.1} s = {:.0}/s); COPY {copy_s:.1} s = {:.0}/s; exactly once: {once}",
                run + 1,
                self.sizes.heavy_runs,
                n as f64 / drain_s,
                n as f64 / copy_s
            ));
            section.runs.push(serde_json::json!({
                "run": run + 1, "mutations": n, "queue_s": queue_s, "cloud_ready_s": ready_s, "wait_before_first_batch_s": wait_s,
                "drain_s": drain_s, "total_s": total_s, "copy_s": copy_s, "applied_in_cloud": applied_cloud,
                "collections_in_cloud": collections_cloud, "applied_outcomes_at_gateway": applied_edge, "dead_letters": dead,
                "exactly_once": once
            }));
            figures.push([
                total_s,
                wait_s,
                drain_s,
                n as f64 / drain_s,
                copy_s,
                n as f64 / copy_s,
                queue_s,
            ]);
            self.drain_rates.push(n as f64 / drain_s);
        }
        let col = |i: usize| figures.iter().map(|f| f[i]).collect::<Vec<_>>();
        section.row(
            "relay drain",
            &[
                ("total s (API start → outbox empty)", col(0)),
                ("wait s (API start → first batch applied)", col(1)),
                ("drain s (first batch → last)", col(2)),
                ("mutations/s (drain)", col(3)),
            ],
        );
        section.row("bulk COPY", &[("seconds", col(4)), ("mutations/s", col(5))]);
        section.row(
            "queueing at the gateway (psql, not the write path)",
            &[("seconds", col(6))],
        );
        let ratio = Some(
            section.median("relay drain", "mutations/s (drain)").unwrap_or_default()
                / section.median("bulk COPY", "mutations/s").unwrap_or(f64::NAN),
        );
        let total_ratio = Some(
            (n as f64
                / section
                    .median("relay drain", "total s (API start → outbox empty)")
                    .unwrap_or(f64::NAN))
                / section.median("bulk COPY", "mutations/s").unwrap_or(f64::NAN),
        );
        if let Some(r) = ratio {
            section.ratios.push(("drain rate / COPY rate".into(), r));
        }
        if let Some(r) = total_ratio {
            section.ratios.push(("rate over the total time / COPY rate".into(), r));
        }
        if section.notes.is_empty() {
            section.notes.push(format!(
                "every run: all {n} mutations applied exactly once in the cloud, none quarantined"
            ));
        }
        self.memory.push(("drain".into(), rss));
        let check = self.check();
        self.targets.push(target(
            "drain",
            &format!("{n} mutations, API start → outbox empty, s"),
            Goal::Below,
            15.0,
            section.median("relay drain", "total s (API start → outbox empty)"),
            "s",
            check,
        ));
        self.targets.push(target(
            "drain",
            "drain rate / COPY rate",
            Goal::AtLeast,
            0.25,
            ratio,
            "×",
            check,
        ));
        Ok(section)
    }

    /// Benchmark 6b: the same mutations replicated as documents from a local PouchDB to pouchdb-server.
    pub(crate) async fn pouch_replication(&mut self) -> anyhow::Result<Section> {
        let documents = self.documents.clone().context("no documents")?;
        let n = self.sizes.backlog;
        say("pouchdb replication: starting");
        let mut section = Section::new(
            "pouch",
            "6. Replication to pouchdb-server vs the relay drain",
            format!(
                "The first drain run's {n} mutations, as documents (`_id` = mutation id), loaded into a local PouchDB \
                 on LevelDB (not timed), then `PouchDB.replicate(local, remote, {{batch_size: {RELAY_BATCH}}})` to a new \
                 database of pouchdb-server (LevelDB, plain HTTP), timed until it resolves; every document must arrive. \
                 Compared with the relay's drain rate (which also applies each mutation: inserts, audit, \
                 exactly-once record, durable commits)."
            ),
        );
        let script = self.opts.root.join("tests/bench/replicate.js");
        let local = self.work.join("pouch-local");
        std::fs::create_dir_all(&local)?;
        let (mut seconds, mut rates) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.heavy_runs {
            let output = tokio::process::Command::new("node")
                .arg(&script)
                .arg(&documents)
                .arg(&local)
                .arg(format!("http://127.0.0.1:{}", self.pouch_port))
                .arg(format!("mutations_{run}"))
                .arg(RELAY_BATCH.to_string())
                .env("NODE_PATH", self.node_modules())
                .current_dir(self.opts.root.join("tests/bench"))
                .output()
                .await
                .context("run node")?;
            if !output.status.success() {
                bail!("replicate.js failed: {}", String::from_utf8_lossy(&output.stderr));
            }
            let v: serde_json::Value = serde_json::from_slice(&output.stdout).context("replicate.js output")?;
            let s = v["replicate_s"].as_f64().unwrap_or(f64::NAN);
            let arrived = v["remote_doc_count"].as_u64().unwrap_or_default();
            if arrived != n as u64 {
                section
                    .notes
                    .push(format!("run {}: only {arrived} of {n} documents arrived", run + 1));
            }
            say(&format!(
                "pouchdb replication {}/{}: {n} documents in {s:.1} s = {:.0}/s",
                run + 1,
                self.sizes.heavy_runs,
                n as f64 / s
            ));
            seconds.push(s);
            rates.push(n as f64 / s);
            section.runs.push(v);
        }
        section.row(
            "PouchDB → pouchdb-server",
            &[("seconds", seconds), ("documents/s", rates)],
        );
        if let (Some(ours), Some(pouch)) = (
            report::Stat::of(&self.drain_rates),
            section.median("PouchDB → pouchdb-server", "documents/s"),
        ) {
            section.ratios.push((
                "relay drain rate / PouchDB replication rate".into(),
                ours.median / pouch,
            ));
            self.targets.push(report::info(
                "peer sync",
                "relay drain rate / PouchDB replication rate",
                Some(ours.median / pouch),
                "×",
            ));
        }
        Ok(section)
    }
}
