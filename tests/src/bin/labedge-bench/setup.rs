//! The run's processes: the cloud API on its seeded network, the lab's gateways, the reference
//! servers (nginx, pouchdb-server), and the tools and tablets that drive them.

use super::*;

impl Bench {
    pub(crate) async fn tool(
        &self,
        program: &Path,
        args: &[&str],
        envs: &[(String, String)],
    ) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_remove("LABEDGE_API_CONFIG")
            .env_remove("LABEDGE_GATEWAY_CONFIG");
        for (k, v) in envs {
            command.env(k, v);
        }
        let output = command
            .output()
            .await
            .with_context(|| format!("run {}", program.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            bail!("{} {} failed:\n{text}", program.display(), args.join(" "));
        }
        Ok(text)
    }

    pub(crate) fn api(&self) -> PathBuf {
        self.bins.join("api")
    }

    pub(crate) fn edge_gateway(&self) -> PathBuf {
        self.bins.join("edge-gateway")
    }

    /// The cloud database, the synthetic network, the 30-visit round, the gateway's credential.
    pub(crate) async fn setup_cloud(&mut self) -> anyhow::Result<()> {
        self.cloud_db = self.dbs.create("cloud").await?;
        self.edge_db = self.dbs.create("edge").await?;
        self.api_port = free_port()?;
        // The benchmark's cloud API, configured as the tests' stacks are, with the appointment
        // window a lab booking weeks ahead sets (the most the config allows): the desk books only
        // within it. The seed's appointments end 3 days ahead, so the bootstrap's rows are the same.
        let api = ApiFile {
            name: "api",
            port: self.api_port,
            database_url: &self.cloud_db,
            upstreams: &upstream("cloud", self.api_port),
            fail_fast: false,
            extra: "[feed]\nwindow_ahead_days = 90\n",
        };
        self.api_toml = self.work.join("api.toml");
        std::fs::write(&self.api_toml, api.text(&self.work))?;
        let cfg = self.api_toml.display().to_string();
        self.tool(&self.api(), &["--config", &cfg, "init-pki"], &[]).await?;
        self.tool(&self.api(), &["--config", &cfg, "migrate"], &[]).await?;
        say(&format!(
            "seeding a network of {} patients with one proximity lab (not timed)",
            self.sizes.patients
        ));
        let seeded = Instant::now();
        let summary = self
            .tool(
                &self.bins.join("labedge-demo"),
                &[
                    "--config",
                    &cfg,
                    "--patients",
                    &self.sizes.patients.to_string(),
                    "--proximity-labs",
                    "1",
                ],
                &[],
            )
            .await?;
        std::fs::write(self.work.join("seed.txt"), &summary)?;
        let seed_s = seeded.elapsed().as_secs_f64();

        let mut cloud = connect(&self.cloud_db).await?;
        let first = |rows: Vec<String>, what: &str| rows.into_iter().next().with_context(|| format!("no {what}"));
        let code = first(
            texts(
                &mut cloud,
                "SELECT code AS t FROM labs WHERE kind = 'proximity' ORDER BY code LIMIT 1",
            )
            .await?,
            "proximity lab",
        )?;
        let id = first(
            texts(
                &mut cloud,
                &format!("SELECT id::text AS t FROM labs WHERE code = '{code}'"),
            )
            .await?,
            "lab id",
        )?;
        let login = |role: &str| {
            format!(
                "SELECT s.login AS t FROM staff s JOIN labs l ON l.id = s.lab_id WHERE l.code = '{code}' AND s.role = '{role}' \
                 ORDER BY s.login LIMIT 1"
            )
        };
        self.lab = Lab {
            id: id.parse()?,
            admin: first(texts(&mut cloud, &login("lab_admin")).await?, "lab admin")?,
            nurse: first(texts(&mut cloud, &login("nurse")).await?, "nurse")?,
            sampler: first(texts(&mut cloud, &login("home_sampler")).await?, "home sampler")?,
            code,
        };
        // A round of 30 visits for one home sampler tomorrow (the seeded rounds have 8 to 15): her own
        // visits of that day go to a colleague, and 30 home visits of the lab are copied into her round.
        self.round_date = first(
            texts(
                &mut cloud,
                "SELECT ((now() AT TIME ZONE 'Europe/Paris')::date + 1)::text AS t",
            )
            .await?,
            "date",
        )?;
        let (lab, sampler, day) = (self.lab.id, self.lab.sampler.clone(), self.round_date.clone());
        cloud
            .batch_execute(&format!(
                "UPDATE appointments SET assigned_staff_id = (SELECT id FROM staff WHERE lab_id = '{lab}' AND role = 'home_sampler' \
                   AND login <> '{sampler}' ORDER BY login LIMIT 1), version = version + 1, updated_at = now() \
                 WHERE assigned_staff_id = (SELECT id FROM staff WHERE login = '{sampler}') AND kind = 'home' \
                   AND (scheduled_at AT TIME ZONE 'Europe/Paris')::date = '{day}'; \
                 INSERT INTO appointments (id, lab_id, patient_id, prescription_id, kind, scheduled_at, duration_min, address_line, \
                   postal_code, city, access_notes, assigned_staff_id, round_position, status) \
                 SELECT gen_random_uuid(), a.lab_id, a.patient_id, a.prescription_id, 'home', \
                   (('{day}'::date + time '07:00') AT TIME ZONE 'Europe/Paris') + make_interval(mins => (12 * (a.n - 1))::int), \
                   a.duration_min, a.address_line, a.postal_code, a.city, a.access_notes, \
                   (SELECT id FROM staff WHERE login = '{sampler}'), a.n::smallint, 'scheduled' \
                 FROM (SELECT *, row_number() OVER (ORDER BY scheduled_at DESC, id) AS n FROM appointments \
                       WHERE lab_id = '{lab}' AND kind = 'home' AND prescription_id IS NOT NULL \
                       ORDER BY scheduled_at DESC, id LIMIT {ROUND_VISITS}) a;"
            ))
            .await
            .context("make the 30-visit round")?;
        let round = scalar(
            &mut cloud,
            &format!(
                "SELECT count(*) AS n FROM appointments WHERE assigned_staff_id = (SELECT id FROM staff WHERE login = '{sampler}') \
                 AND kind = 'home' AND (scheduled_at AT TIME ZONE 'Europe/Paris')::date = '{day}'"
            ),
        )
        .await?;
        if round != ROUND_VISITS {
            bail!("the round of {day} has {round} visits, not {ROUND_VISITS}");
        }
        let lab_patients = scalar(
            &mut cloud,
            &format!(
                "SELECT count(DISTINCT patient_id) AS n FROM (SELECT patient_id FROM appointments WHERE lab_id = '{lab}' \
                 UNION ALL SELECT patient_id FROM prescriptions WHERE lab_id = '{lab}') x"
            ),
        )
        .await?;

        self.gw_dir = self.work.join("gateway");
        let gw_port = free_port()?;
        let args = provision_args(&cfg, &self.lab.code, &self.gw_dir, gw_port, &self.edge_db);
        self.tool(&self.api(), &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .await?;
        self.gw_toml = self.gw_dir.join("edge-gateway.toml");
        self.client = Some(TestPki::new(&self.work.join("pki")).client_for(None));
        self.start_cloud().await?;

        self.settings = vec![
            ("mode".into(), if self.opts.smoke { "smoke" } else { "full" }.into()),
            (
                "build".into(),
                if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
            ),
            ("seeded patients".into(), self.sizes.patients.to_string()),
            ("seeding (not timed)".into(), format!("{seed_s:.0} s")),
            ("lab".into(), self.lab.code.clone()),
            (
                "patients with a visit or prescription at the lab".into(),
                lab_patients.to_string(),
            ),
            ("runs".into(), self.sizes.runs.to_string()),
            ("long runs".into(), self.sizes.heavy_runs.to_string()),
            ("wrk run".into(), format!("{} s", self.sizes.duration.as_secs())),
            ("backlog".into(), self.sizes.backlog.to_string()),
            ("relay batch".into(), RELAY_BATCH.to_string()),
            (
                "gateway environment (deploy/systemd/labedge-gateway.service)".into(),
                unit_env(&self.opts.root.join("deploy/systemd/labedge-gateway.service"))
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ];
        Ok(())
    }

    pub(crate) async fn start_cloud(&mut self) -> anyhow::Result<()> {
        self.cloud_starts += 1;
        let cfg = self.api_toml.display().to_string();
        let proc = Proc::start(
            &format!("api-{}", self.cloud_starts),
            &self.api(),
            &["--config", &cfg, "serve"],
            &unit_env(&self.opts.root.join("deploy/systemd/labedge-api.service")),
            &self.work,
            None,
        )?;
        let url = format!("https://localhost:{}/healthz", self.api_port);
        self.cloud = Some(proc);
        wait_http(self.client()?, &url, Duration::from_secs(60))
            .await
            .with_context(|| self.cloud.as_ref().map(Proc::tail).unwrap_or_default())
    }

    pub(crate) async fn stop_cloud(&mut self) {
        if let Some(mut cloud) = self.cloud.take() {
            cloud.stop().await;
        }
    }

    /// The gateway's environment: its database, address, Redis prefix, and whether it serves plain
    /// HTTP without sync or relay (the second process of the plain-HTTP comparisons).
    pub(crate) fn gateway_env(&self, db: &str, port: u16, prefix: &str, plain: bool) -> Vec<(String, String)> {
        let mut env = unit_env(&self.opts.root.join("deploy/systemd/labedge-gateway.service"));
        for (k, v) in [
            ("LABEDGE_GATEWAY_DATABASE__URL", db.to_owned()),
            ("LABEDGE_GATEWAY_HTTP__ADDR", format!("127.0.0.1:{port}")),
            ("LABEDGE_GATEWAY_REDIS__KEY_PREFIX", prefix.to_owned()),
            ("LABEDGE_GATEWAY_RELAY__BATCH_SIZE", RELAY_BATCH.to_string()),
        ] {
            env.push((k.into(), v));
        }
        if plain {
            env.push(("LABEDGE_GATEWAY_SYNC__ENABLED".into(), "false".into()));
            env.push(("LABEDGE_GATEWAY_RELAY__ENABLED".into(), "false".into()));
        }
        env
    }

    pub(crate) fn gateway(&self, name: &str, db: &str, port: u16, prefix: &str, plain: bool) -> anyhow::Result<Proc> {
        let cfg = if plain {
            // The provisioned file with its listener's TLS swapped for plain HTTP (sandbox profile).
            let text = std::fs::read_to_string(&self.gw_toml)?;
            let plain_text: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("tls = ") {
                        "plain_http = true"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let path = self.gw_dir.join("edge-gateway-plain.toml");
            std::fs::write(&path, plain_text + "\n")?;
            path
        } else {
            self.gw_toml.clone()
        };
        let cfg = cfg.display().to_string();
        let gateway = self.edge_gateway().display().to_string();
        let mut args: Vec<&str> = vec![&gateway, "--config", &cfg, "serve"];
        // `LABEDGE_BENCH_GATEWAY_WRAP="valgrind --tool=callgrind …"` runs the measured gateway under a
        // profiler (docs/performance.md); the pid stays the gateway's.
        let wrap = std::env::var("LABEDGE_BENCH_GATEWAY_WRAP").unwrap_or_default();
        if name == "gateway" && !wrap.trim().is_empty() {
            let mut wrapped: Vec<&str> = wrap.split_whitespace().collect();
            wrapped.extend(args);
            args = wrapped;
        }
        Proc::start(
            name,
            Path::new(args[0]),
            &args[1..],
            &self.gateway_env(db, port, prefix, plain),
            &self.work,
            None,
        )
    }

    /// The lab's gateway over HTTPS (sync and relay on), a second process of it on plain HTTP on the
    /// same database (sync and relay off), and two tablets: a nurse's and a home sampler's.
    pub(crate) async fn start_gateways(&mut self) -> anyhow::Result<()> {
        let (tls_port, plain_port) = (free_port()?, free_port()?);
        let prefix = format!("{}main:", self.redis_prefix);
        self.gateway = Some(self.gateway("gateway", &self.edge_db, tls_port, &prefix, false)?);
        self.plain = Some(self.gateway("gateway-plain", &self.edge_db, plain_port, &prefix, true)?);
        self.gw_url = format!("https://localhost:{tls_port}");
        self.plain_url = format!("http://127.0.0.1:{plain_port}");
        let client = self.client()?.clone();
        wait_http(&client, &format!("{}/healthz", self.gw_url), Duration::from_secs(60))
            .await
            .with_context(|| self.gateway.as_ref().map(Proc::tail).unwrap_or_default())?;
        wait_http(&client, &format!("{}/healthz", self.plain_url), Duration::from_secs(60))
            .await
            .with_context(|| self.plain.as_ref().map(Proc::tail).unwrap_or_default())?;
        let admin = admin_session(&client, &self.gw_url, &self.lab.admin).await?;
        self.nurse = Some(enroll(&client, &self.gw_url, &admin, &self.lab.nurse).await?);
        self.sampler = Some(enroll(&client, &self.gw_url, &admin, &self.lab.sampler).await?);
        Ok(())
    }

    pub(crate) async fn token(&self, tablet: &Tablet) -> anyhow::Result<String> {
        login(self.client()?, &self.gw_url, tablet).await
    }

    pub(crate) fn nurse(&self) -> anyhow::Result<&Tablet> {
        self.nurse.as_ref().context("no nurse tablet")
    }

    /// nginx serving the patient's response bytes as a static file (HTTPS with the gateway's own
    /// certificate, and plain HTTP), and pouchdb-server holding it as a document.
    pub(crate) async fn start_peers(&mut self) -> anyhow::Result<()> {
        let client = self.client()?.clone();
        let token = self.token(self.nurse()?).await?;
        // A patient whose answer weighs about 1.5 KB, as the document.
        let mut edge = connect(&self.edge_db).await?;
        let candidates = texts(
            &mut edge,
            "SELECT id::text AS t FROM patients WHERE address_line IS NOT NULL AND phone IS NOT NULL ORDER BY id LIMIT 40",
        )
        .await?;
        let mut best: Option<(String, Vec<u8>)> = None;
        for id in candidates {
            let response = client
                .get(format!("{}/v1/patients/{id}", self.gw_url))
                .bearer_auth(&token)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("GET /v1/patients/{id}: {}", response.status());
            }
            let body = response.bytes().await?.to_vec();
            let distance = |b: &[u8]| (b.len() as i64 - 1536).abs();
            if best.as_ref().is_none_or(|(_, b)| distance(&body) < distance(b)) {
                best = Some((id, body));
            }
        }
        let (id, body) = best.context("no patient to read")?;
        self.patient_id = id.clone();
        self.patient_bytes = body.len();

        let nginx_dir = self.work.join("nginx");
        let file = nginx_dir.join(format!("root/v1/patients/{id}"));
        std::fs::create_dir_all(file.parent().context("root")?)?;
        std::fs::create_dir_all(nginx_dir.join("tmp"))?;
        std::fs::write(&file, &body)?;
        self.nginx_ports = (free_port()?, free_port()?);
        let n = nginx_dir.display();
        let w = self.gw_dir.display();
        std::fs::write(
            nginx_dir.join("nginx.conf"),
            format!(
                "# The static-file reference of the read benchmark: the patient's bytes, as the gateway sends them.\n\
                 worker_processes {workers};\ndaemon off;\npid {n}/nginx.pid;\nerror_log {n}/error.log warn;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log {n}/access.log;\n  default_type application/json;\n  sendfile on;\n  tcp_nopush on;\n\
                 \x20 keepalive_requests 1000000;\n  keepalive_timeout 75s;\n\
                 \x20 client_body_temp_path {n}/tmp/body;\n  proxy_temp_path {n}/tmp/proxy;\n  fastcgi_temp_path {n}/tmp/fastcgi;\n\
                 \x20 uwsgi_temp_path {n}/tmp/uwsgi;\n  scgi_temp_path {n}/tmp/scgi;\n\
                 \x20 server {{\n    listen 127.0.0.1:{https} ssl;\n    ssl_certificate {w}/tablet-server.pem;\n\
                 \x20   ssl_certificate_key {w}/tablet-server.key;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    root {n}/root;\n  }}\n\
                 \x20 server {{\n    listen 127.0.0.1:{http};\n    root {n}/root;\n  }}\n}}\n",
                workers = std::thread::available_parallelism().map_or(1, usize::from),
                https = self.nginx_ports.0,
                http = self.nginx_ports.1,
            ),
        )?;
        let conf = nginx_dir.join("nginx.conf").display().to_string();
        let prefix = format!("{n}/");
        let error_log = format!("{n}/error.log");
        self.nginx = Some(Proc::start(
            "nginx",
            Path::new("nginx"),
            &["-p", &prefix, "-e", &error_log, "-c", &conf],
            &[],
            &self.work,
            None,
        )?);
        let nginx_url = format!("http://127.0.0.1:{}/v1/patients/{id}", self.nginx_ports.1);
        wait_http(&client, &nginx_url, Duration::from_secs(20))
            .await
            .with_context(|| self.nginx.as_ref().map(Proc::tail).unwrap_or_default())?;
        let served = client.get(&nginx_url).send().await?.bytes().await?;
        if served.as_ref() != body.as_slice() {
            bail!("nginx does not serve the gateway's bytes");
        }

        // pouchdb-server on LevelDB in the work folder (it writes its config and log to its cwd).
        let pouch_dir = self.work.join("pouchdb-server");
        std::fs::create_dir_all(pouch_dir.join("db"))?;
        self.pouch_port = free_port()?;
        let server = self.node_modules().join("pouchdb-server/bin/pouchdb-server");
        if !server.is_file() {
            bail!(
                "{} is missing: npm ci --omit=optional --prefix tests/bench",
                server.display()
            );
        }
        let port = self.pouch_port.to_string();
        let db_dir = pouch_dir.join("db").display().to_string();
        let config = pouch_dir.join("config.json").display().to_string();
        self.pouch = Some(Proc::start(
            "pouchdb-server",
            Path::new("node"),
            &[
                &server.display().to_string(),
                "--port",
                &port,
                "--host",
                "127.0.0.1",
                "--dir",
                &db_dir,
                "--config",
                &config,
                "--no-stdout-logs",
            ],
            &[],
            &self.work,
            Some(&pouch_dir),
        )?);
        let pouch = format!("http://127.0.0.1:{}", self.pouch_port);
        wait_http(&client, &format!("{pouch}/"), Duration::from_secs(60))
            .await
            .with_context(|| self.pouch.as_ref().map(Proc::tail).unwrap_or_default())?;
        let created = client.put(format!("{pouch}/bench")).send().await?;
        if !created.status().is_success() {
            bail!("pouchdb-server: create the database: {}", created.status());
        }
        let stored = client
            .put(format!("{pouch}/bench/{id}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        if !stored.status().is_success() {
            bail!("pouchdb-server: store the patient: {}", stored.status());
        }
        Ok(())
    }

    pub(crate) fn gateway_peak(&self, plain: bool) -> Option<f64> {
        let gw = if plain { &self.plain } else { &self.gateway };
        gw.as_ref().and_then(Proc::peak_rss_mib)
    }

    pub(crate) fn reset_gateway_peaks(&self) {
        for gw in [&self.gateway, &self.plain].into_iter().flatten() {
            gw.reset_peak();
        }
    }

    pub(crate) fn gw_port(&self) -> anyhow::Result<u16> {
        self.gw_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("gateway port")
    }

    pub(crate) async fn stop_all(&mut self) {
        for proc in [
            self.gateway.take(),
            self.plain.take(),
            self.pouch.take(),
            self.cloud.take(),
        ]
        .into_iter()
        .flatten()
        {
            let mut proc = proc;
            proc.stop().await;
        }
        if let Some(mut nginx) = self.nginx.take() {
            nginx.stop_with("QUIT", Duration::from_secs(10)).await;
        }
    }

    /// Deletes this run's Redis keys.
    pub(crate) fn clean_redis(&self) {
        let url = std::env::var("LABEDGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let Ok(client) = redis::Client::open(url) else { return };
        let Ok(mut conn) = client.get_connection() else { return };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _ = redis::cmd("DEL").arg(chunk).query::<i64>(&mut conn);
        }
    }
}
