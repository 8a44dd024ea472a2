//! Benchmark 8: the FHIR interface: the initial load of patients by `api import` against a plain
//! `COPY` of the same rows, a 100-entry transaction Bundle, a 1,000-Specimen search page.

use std::io::Write as _;

use mobile_contracts::Nir;

use super::*;

/// The INS matricule of bench patient `i` (unique for i < 95 million, key computed).
fn bench_nir(i: u64) -> String {
    let first13 = format!("2{:02}{:02}{:02}{:06}", 50, 1, 1 + (i / 1_000_000) % 95, i % 1_000_000);
    let key = Nir::compute_key(&first13).unwrap_or(0);
    format!("{first13}{key:02}")
}

fn bench_patient(i: u64) -> serde_json::Value {
    serde_json::json!({
        "resourceType": "Patient",
        "id": format!("bench-{i}"),
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": bench_nir(i)}],
        "name": [{"use": "official", "family": format!("NOM{}", i % 5_000), "given": ["Anne", "Marie"]}],
        "gender": "female",
        "birthDate": "1950-01-15",
        "extension": [{
            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
            "extension": [{"url": "identityStatus", "valueCoding": {
                "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": "RECUP"}}]
        }]
    })
}

impl Bench {
    /// Benchmark 8.
    pub(crate) async fn fhir(&mut self) -> anyhow::Result<Section> {
        say("fhir: starting");
        let patients: u64 = if self.opts.smoke { 5_000 } else { 1_000_000 };
        let mut section = Section::new(
            "fhir",
            "8. FHIR interface",
            format!(
                "Import: `api import` of {patients} Patients from one NDJSON file (FR Core INS, key checked, \
                 non-UUID source ids) into a fresh, migrated cloud database, each run; the reference is `psql \\copy` \
                 of the same rows (CSV, the same columns, the same table and its change-feed triggers) into another \
                 fresh one. Bundle: 100-Patient transaction Bundles posted one after the other by an integration \
                 client over mutual TLS to the running API. Search: `GET /fhir/R4/Specimen?_cursor=0&_count=1000` \
                 on the cloud after the write benchmarks (1,000 Specimens a page)."
            ),
        );
        let dir = self.work.join("fhir");
        std::fs::create_dir_all(&dir)?;
        let ndjson = dir.join("Patient.ndjson");
        let csv = dir.join("patients.csv");
        {
            let mut lines = std::io::BufWriter::new(std::fs::File::create(&ndjson)?);
            let mut rows = std::io::BufWriter::new(std::fs::File::create(&csv)?);
            for i in 0..patients {
                writeln!(lines, "{}", bench_patient(i))?;
                writeln!(
                    rows,
                    "{},{},1.2.250.1.213.1.4.8,recovered,NOM{},Anne Marie,Anne,1950-01-15,F",
                    Uuid::from_u128(u128::from(i) + 1),
                    bench_nir(i),
                    i % 5_000
                )?;
            }
        }
        let cfg = self.api_toml.display().to_string();
        let (mut import_rates, mut copy_rates) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.heavy_runs {
            for suffix in ["import-state", "rejected.ndjson"] {
                let _ = std::fs::remove_file(dir.join(format!("Patient.ndjson.{suffix}")));
            }
            let db = self.dbs.create("fhirimport").await?;
            let env = [("LABEDGE_API_DATABASE__URL".to_owned(), db.clone())];
            self.tool(&self.api(), &["--config", &cfg, "migrate"], &env).await?;
            let started = Instant::now();
            let summary = self
                .tool(
                    &self.api(),
                    &["--config", &cfg, "import", "--quiet", &ndjson.display().to_string()],
                    &env,
                )
                .await?;
            let seconds = started.elapsed().as_secs_f64();
            let loaded = scalar(&mut connect(&db).await?, "SELECT count(*) AS n FROM patients").await?;
            if loaded != patients as i64 {
                bail!("import loaded {loaded} of {patients} patients: {summary}");
            }
            import_rates.push(patients as f64 / seconds);

            let db = self.dbs.create("fhircopy").await?;
            let env = [("LABEDGE_API_DATABASE__URL".to_owned(), db.clone())];
            self.tool(&self.api(), &["--config", &cfg, "migrate"], &env).await?;
            let copy = format!(
                "\\copy patients (id, nir, ins_oid, identity_status, birth_family_name, birth_given_names, \
                 first_given_name, birth_date, sex) FROM '{}' CSV",
                csv.display()
            );
            let started = Instant::now();
            self.tool(Path::new("psql"), &["-q", &db, "-c", &copy], &[]).await?;
            copy_rates.push(patients as f64 / started.elapsed().as_secs_f64());
            say(&format!(
                "fhir import {}/{}: {:.0} patients/s (COPY {:.0}/s)",
                run + 1,
                self.sizes.heavy_runs,
                import_rates[run],
                copy_rates[run]
            ));
        }
        section.row("api import", &[("patients/s", import_rates.clone())]);
        section.row("COPY (reference)", &[("patients/s", copy_rates.clone())]);
        let import = section.median("api import", "patients/s");
        let ratio = import
            .zip(section.median("COPY (reference)", "patients/s"))
            .map(|(a, b)| a / b);
        if let Some(r) = ratio {
            section.ratios.push(("api import / COPY".into(), r));
        }
        let check = self.check();
        self.targets.push(target(
            "fhir",
            "NDJSON import, patients/s",
            Goal::AtLeast,
            10_000.0,
            import,
            "/s",
            check,
        ));
        self.targets.push(target(
            "fhir",
            "import rate / COPY rate",
            Goal::AtLeast,
            0.3,
            ratio,
            "×",
            check,
        ));

        if self.cloud.is_none() {
            self.start_cloud().await?;
        }
        let (bundle_ms, page_ms) = self.fhir_requests(&dir, patients).await?;
        section.row("100-entry transaction Bundle", &[("ms", bundle_ms.clone())]);
        section.row("1,000-Specimen search page", &[("ms", page_ms.clone())]);
        let p99 = percentile(&bundle_ms, 0.99);
        section.notes.push(format!(
            "Bundle: {} Bundles, p99 {:.0} ms; search: {} pages.",
            bundle_ms.len(),
            p99.unwrap_or(f64::NAN),
            page_ms.len()
        ));
        self.targets.push(target(
            "fhir",
            "100-entry Bundle p99",
            Goal::Below,
            200.0,
            p99,
            " ms",
            check,
        ));
        let page = percentile(&page_ms, 0.5);
        self.targets.push(target(
            "fhir",
            "1,000-Specimen page, median",
            Goal::Below,
            100.0,
            page,
            " ms",
            check,
        ));
        let _ = std::fs::remove_file(&ndjson);
        let _ = std::fs::remove_file(&csv);
        Ok(section)
    }

    /// Bundles posted and Specimen pages read against the running cloud API; their times in ms.
    async fn fhir_requests(&mut self, dir: &Path, first_patient: u64) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let cfg = self.api_toml.display().to_string();
        let name = format!("bench{}", std::process::id());
        let out = dir.join("client");
        let _ = std::fs::remove_dir_all(&out);
        self.tool(
            &self.api(),
            &[
                "--config",
                &cfg,
                "create-integration-client",
                "--name",
                &name,
                "--scope",
                "system/*.*",
                "--out",
                &out.display().to_string(),
            ],
            &[],
        )
        .await?;
        let tls = labedge_service::tls::client_config(
            &out.join("cloud-ca.pem"),
            Some((&out.join(format!("{name}.pem")), &out.join(format!("{name}.key")))),
        )?;
        let http = reqwest::Client::builder().tls_backend_preconfigured(tls).build()?;
        let base = format!("https://localhost:{}/fhir/R4", self.api_port);
        let bundles = if self.opts.smoke { 5 } else { 200 };
        let mut bundle_ms = Vec::new();
        // Patients the import runs did not use, so that every Bundle creates 100.
        let mut next = first_patient + 10_000_000;
        for _ in 0..bundles {
            let entries: Vec<serde_json::Value> = (0..100)
                .map(|_| {
                    next += 1;
                    let mut patient = bench_patient(next);
                    patient.as_object_mut().map(|p| p.remove("id"));
                    serde_json::json!({"resource": patient, "request": {"method": "POST", "url": "Patient"}})
                })
                .collect();
            let body =
                serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string();
            let started = Instant::now();
            let answer = http
                .post(&base)
                .header("Content-Type", "application/fhir+json")
                .body(body)
                .send()
                .await?;
            let status = answer.status();
            let _ = answer.bytes().await?;
            if !status.is_success() {
                bail!("a Bundle was answered {status}");
            }
            bundle_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut cloud = connect(&self.cloud_db).await?;
        let tubes = scalar(&mut cloud, "SELECT count(*) AS n FROM collection_tubes").await?;
        if tubes < 1_000 {
            // Run alone (`--only fhir`): collections as the intake would have stored them, one tube each.
            say("fhir: the cloud holds fewer than 1,000 tubes; adding collections for the search page");
            let device = Uuid::new_v4();
            cloud
                .batch_execute(&format!(
                    "INSERT INTO collections (id, lab_id, patient_id, prescription_id, collected_at, collected_by, device_id, \
                       identity_checked, identity_check_method, recorded_at) \
                     SELECT gen_random_uuid(), p.lab_id, p.patient_id, p.id, now(), s.id, '{device}', true, 'id_document', now() \
                     FROM (SELECT * FROM prescriptions WHERE lab_id = '{lab}' LIMIT 1) p \
                     JOIN LATERAL (SELECT id FROM staff WHERE lab_id = p.lab_id LIMIT 1) s ON true, generate_series(1, 1000); \
                     INSERT INTO collection_tubes (collection_id, barcode, tube_type, lab_id) \
                     SELECT c.id, 'FB' || replace(c.id::text, '-', ''), (SELECT code FROM tube_types LIMIT 1), c.lab_id \
                     FROM collections c WHERE c.device_id = '{device}';",
                    lab = self.lab.id
                ))
                .await?;
        }
        let pages = if self.opts.smoke { 3 } else { 30 };
        let mut page_ms = Vec::new();
        for _ in 0..pages {
            let started = Instant::now();
            let answer = http
                .get(format!("{base}/Specimen?_cursor=0&_count=1000"))
                .send()
                .await?;
            let status = answer.status();
            let body: serde_json::Value = answer.json().await?;
            if !status.is_success() || body["entry"].as_array().map_or(0, Vec::len) < 1_000 {
                bail!("a Specimen page was answered {status} with fewer than 1,000 entries");
            }
            page_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok((bundle_ms, page_ms))
    }
}

fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
