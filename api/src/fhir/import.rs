//! `api import`: the initial load of a network from NDJSON files (the FHIR Bulk Data format, one
//! resource per line, a file per type: `Patient.ndjson`, …). Streaming, in batches of one
//! transaction each; idempotent (a resource keeps its id across runs: its own when it is a UUID,
//! otherwise a UUIDv5 of its type and the source's id, and an unchanged row is not rewritten);
//! resumable (`<file>.import-state` holds the offset of the last committed batch); every rejected
//! line is reported in `<file>.rejected.ndjson` with the element at fault, never its data.
//!
//! Patients, the bulk of a network, are written set-wise (one `INSERT … SELECT FROM unnest(…)` a
//! batch); the other types go through the same write as the REST interface, one savepoint each.
//! A batch that fails as a whole (an INS matricule held by another patient) is retried line by line
//! so that only the guilty lines are rejected.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use diesel::sql_types::{Array, Bool, Date, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::outcome::FhirError;
use super::patient::PatientRow;
use super::resources::{self, Kind, Parsed};
use super::store::Expect;
use crate::config::Config;

/// `api import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// NDJSON files (one FHIR resource a line), loaded in the order given: organizations and
    /// practitioners before the roles, patients before their prescriptions and appointments.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Lines a transaction holds.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    /// No progress bar (logs, CI).
    #[arg(long)]
    pub quiet: bool,
}

/// Where an import of a file stands, saved after each committed batch.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportState {
    /// Byte offset of the first line not yet committed.
    pub offset: u64,
    /// Lines read before `offset`.
    pub lines: u64,
    /// Resources written (created or changed).
    pub written: u64,
    /// Lines already as stored (a re-run).
    pub unchanged: u64,
    /// Lines rejected.
    pub rejected: u64,
}

/// The owner of imported resources in the audit log and the Subscriptions' sense.
const IMPORT_OWNER: Uuid = Uuid::nil();
/// Namespace of the ids made from a source's non-UUID ids.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c61_6265_6467_6546_4849_5249_4d50_4f52);

/// The id of a resource whose source id is not a UUID: the first 16 bytes of SHA-256 over the
/// namespace, its type and its id, as a version 8 (custom) UUID. Stable across runs.
fn derived_id(kind: &str, source_id: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(ID_NAMESPACE.as_bytes())
        .chain_update(kind.as_bytes())
        .chain_update(b"/")
        .chain_update(source_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Imports every file; the summary of each.
pub async fn run(config: &Config, args: &ImportArgs) -> anyhow::Result<String> {
    let mut conn = AsyncPgConnection::establish(config.database.url.expose_secret())
        .await
        .context("connect to the cloud database")?;
    let mut summary = String::new();
    for file in &args.files {
        let state = import_file(&mut conn, file, args.batch as usize, args.quiet).await?;
        summary.push_str(&format!(
            "{}: {} lines, {} written, {} unchanged, {} rejected{}\n",
            file.display(),
            state.lines,
            state.written,
            state.unchanged,
            state.rejected,
            if state.rejected > 0 {
                format!(" (see {})", sidecar(file, "rejected.ndjson").display())
            } else {
                String::new()
            }
        ));
    }
    Ok(summary.trim_end().to_owned())
}

fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// One line read, checked and ready to write, or rejected.
enum Line {
    Ready {
        number: u64,
        kind: Kind,
        id: Uuid,
        parsed: Box<Parsed>,
        identifiers: Vec<(String, String)>,
    },
    Rejected {
        number: u64,
        error: FhirError,
    },
}

/// Imports one file from where its state file says; returns the final state.
pub async fn import_file(
    conn: &mut AsyncPgConnection,
    file: &Path,
    batch: usize,
    quiet: bool,
) -> anyhow::Result<ImportState> {
    let state_path = sidecar(file, "import-state");
    let mut state: ImportState = match std::fs::read_to_string(&state_path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("{}: not an import state", state_path.display()))?
        }
        Err(_) => ImportState::default(),
    };
    let mut input = File::open(file).with_context(|| format!("open {}", file.display()))?;
    let size = input.metadata()?.len();
    input.seek(SeekFrom::Start(state.offset))?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut rejected = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sidecar(file, "rejected.ndjson"))?;
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(size)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.set_position(state.offset);
    let mut text = String::new();
    loop {
        let mut lines = Vec::with_capacity(batch);
        let mut consumed = 0u64;
        while lines.len() < batch {
            text.clear();
            let read = reader.read_line(&mut text)?;
            if read == 0 {
                break;
            }
            consumed += read as u64;
            let number = state.lines + lines.len() as u64 + 1;
            if text.trim().is_empty() {
                lines.push(Line::Rejected {
                    number,
                    error: FhirError::bad_request("an empty line"),
                });
                continue;
            }
            lines.push(read_line(number, &text));
        }
        if lines.is_empty() {
            break;
        }
        let (written, unchanged, refused) = write_batch(conn, &lines).await?;
        write_rejected(&mut rejected, &refused)?;
        state.offset += consumed;
        state.lines += lines.len() as u64;
        state.written += written;
        state.unchanged += unchanged;
        state.rejected += refused.len() as u64;
        // Saved after the commit: a crash between the two re-imports one batch, which is idempotent.
        std::fs::write(&state_path, serde_json::to_string(&state)?)?;
        bar.set_position(state.offset);
    }
    bar.finish_and_clear();
    Ok(state)
}

/// Appends the rejected lines to the report: where and why, never the line itself.
fn write_rejected(report: &mut File, refused: &[(u64, FhirError)]) -> anyhow::Result<()> {
    for (number, error) in refused {
        let issue = error.issues.as_slice().first();
        let record = serde_json::json!({
            "line": number,
            "status": error.status.as_u16(),
            "code": issue.map(|i| i.code),
            "expression": issue.and_then(|i| i.expression.clone()),
            "diagnostics": issue.map(|i| i.diagnostics.clone()),
        });
        writeln!(report, "{record}")?;
    }
    Ok(())
}

/// A line checked: its type, id, row and identifiers.
type Checked = (Kind, Uuid, Parsed, Vec<(String, String)>);
/// A patient of a batch: id, row, identifiers.
type PatientLine<'a> = (Uuid, &'a PatientRow, &'a [(String, String)]);

fn read_line(number: u64, text: &str) -> Line {
    let parsed = (|| -> Result<Checked, FhirError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FhirError::bad_request(format!("not JSON: {e}")))?;
        let name = value.get("resourceType").and_then(Value::as_str).unwrap_or("");
        let kind = Kind::parse(name)
            .filter(|k| k.writable() && *k != Kind::Subscription)
            .ok_or_else(|| {
                FhirError::bad_request(format!(
                    "resourceType `{}` is not imported",
                    super::json::printable(name)
                ))
            })?;
        let id = match value.get("id").and_then(Value::as_str) {
            Some(text) => Uuid::parse_str(text).unwrap_or_else(|_| derived_id(name, text)),
            None => return Err(FhirError::required(format!("{name}.id")).code("required")),
        };
        let mut value = value;
        // The source's own id (not a UUID) was mapped: the check of the body's id does not apply.
        value["id"] = Value::String(id.to_string());
        let (parsed, identifiers) = resources::parse(kind, &value)?;
        // A merge moves the old patient's records: it is a PUT of the Patient, not a line of a load.
        if let resources::Parsed::Patient(patient) = &parsed
            && patient.merged_into.is_some()
        {
            return Err(FhirError::at(
                "Patient.link",
                "a merged Patient (link replaced-by) is sent with PUT, not imported",
            )
            .code("not-supported"));
        }
        Ok((kind, id, parsed, identifiers))
    })();
    match parsed {
        Ok((kind, id, parsed, identifiers)) => Line::Ready {
            number,
            kind,
            id,
            parsed: Box::new(parsed),
            identifiers,
        },
        Err(error) => Line::Rejected { number, error },
    }
}

type Outcome = (u64, u64, Vec<(u64, FhirError)>);

/// Writes a batch in one transaction; when the set-wise write of its patients fails as a whole,
/// again line by line.
async fn write_batch(conn: &mut AsyncPgConnection, lines: &[Line]) -> anyhow::Result<Outcome> {
    let mut refused: Vec<(u64, FhirError)> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Rejected { number, error } => Some((*number, error.clone())),
            Line::Ready { .. } => None,
        })
        .collect();
    let patients: Vec<PatientLine<'_>> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Ready {
                id,
                parsed,
                identifiers,
                ..
            } => match parsed.as_ref() {
                Parsed::Patient(row) => Some((*id, row, identifiers.as_slice())),
                _ => None,
            },
            Line::Rejected { .. } => None,
        })
        .collect();
    let others: Vec<&Line> = lines
        .iter()
        .filter(|l| matches!(l, Line::Ready { parsed, .. } if !matches!(parsed.as_ref(), Parsed::Patient(_))))
        .collect();
    let together = conn
        .transaction::<_, FhirError, _>(async |conn| {
            let written = upsert_patients(conn, &patients).await?;
            let mut counts = (written, patients.len() as u64 - written);
            let mut others_refused = Vec::new();
            for line in &others {
                match write_one(conn, line).await {
                    Ok(true) => counts.0 += 1,
                    Ok(false) => counts.1 += 1,
                    Err((number, error)) => others_refused.push((number, error)),
                }
            }
            Ok((counts, others_refused))
        })
        .await;
    match together {
        Ok(((written, unchanged), others_refused)) => {
            refused.extend(others_refused);
            refused.sort_by_key(|(n, _)| *n);
            Ok((written, unchanged, refused))
        }
        Err(_) if patients.len() > 1 => {
            let (written, unchanged, alone) = each_alone(conn, lines).await;
            refused.extend(alone);
            refused.sort_by_key(|(n, _)| *n);
            Ok((written, unchanged, refused))
        }
        Err(error) if error.status.is_server_error() => Err(anyhow::anyhow!("{error}")),
        Err(error) => {
            if let Some(line) = lines.iter().find(|l| matches!(l, Line::Ready { .. })) {
                refused.push((line_number(line), error));
            }
            Ok((0, 0, refused))
        }
    }
}

/// Every line of a batch in a transaction of its own (the batch failed as a whole): written,
/// unchanged, and the refused lines.
async fn each_alone(conn: &mut AsyncPgConnection, lines: &[Line]) -> (u64, u64, Vec<(u64, FhirError)>) {
    let mut refused = Vec::new();
    let (mut written, mut unchanged) = (0, 0);
    for line in lines.iter().filter(|l| matches!(l, Line::Ready { .. })) {
        let alone = conn.transaction::<_, FhirError, _>(async |conn| match line {
            Line::Ready {
                id,
                parsed,
                identifiers,
                ..
            } if matches!(parsed.as_ref(), Parsed::Patient(_)) => {
                let Parsed::Patient(row) = parsed.as_ref() else {
                    unreachable!()
                };
                Ok(upsert_patients(conn, &[(*id, row, identifiers.as_slice())]).await? == 1)
            }
            _ => write_one(conn, line).await.map_err(|(_, e)| e),
        });
        match alone.await {
            Ok(true) => written += 1,
            Ok(false) => unchanged += 1,
            Err(error) => refused.push((line_number(line), error)),
        }
    }
    (written, unchanged, refused)
}

fn line_number(line: &Line) -> u64 {
    match line {
        Line::Ready { number, .. } | Line::Rejected { number, .. } => *number,
    }
}

/// A non-patient line through the REST interface's write, in a savepoint: whether it changed
/// anything (an unchanged re-import keeps its version).
async fn write_one(conn: &mut AsyncPgConnection, line: &Line) -> Result<bool, (u64, FhirError)> {
    let Line::Ready {
        number,
        kind,
        id,
        parsed,
        identifiers,
    } = line
    else {
        return Ok(false);
    };
    let before = resources::read(conn, *kind, &id.to_string())
        .await
        .map_err(|e| (*number, e))?;
    conn.transaction::<_, FhirError, _>(async |conn| {
        resources::write(conn, *kind, *id, IMPORT_OWNER, parsed, identifiers, Expect::Any).await
    })
    .await
    .map_err(|e| (*number, e))?;
    let after = resources::read(conn, *kind, &id.to_string())
        .await
        .map_err(|e| (*number, e))?;
    let same = match (&before, &after) {
        (Some(b), Some(a)) => without_meta(&b.resource) == without_meta(&a.resource),
        _ => false,
    };
    if same && let Some(b) = &before {
        // Nothing changed: put the version back, so that a re-run is invisible to the LIS and the feed.
        rewind_version(conn, *kind, *id, b.version)
            .await
            .map_err(|e| (*number, e))?;
    }
    Ok(!same)
}

fn without_meta(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("meta");
    }
    copy
}

async fn rewind_version(conn: &mut AsyncPgConnection, kind: Kind, id: Uuid, version: i64) -> Result<(), FhirError> {
    let table = match kind {
        Kind::Practitioner => "practitioners",
        Kind::PractitionerRole => "staff",
        Kind::ServiceRequest => "prescriptions",
        Kind::Appointment => "appointments",
        Kind::Organization => "labs",
        _ => return Ok(()),
    };
    diesel::sql_query(format!("UPDATE {table} SET version = $1 WHERE id = $2"))
        .bind::<diesel::sql_types::BigInt, _>(version)
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Changed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// One batch of patients from arrays; a row already as given is not written (so not versioned).
const UPSERT_PATIENTS: &str = "WITH input AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::date[], $13::text[], $14::text[], \
           $15::text[], $16::text[], $17::text[], $18::text[]) AS i(id, nir, ins_oid, identity_status, identity_method, \
           identity_validation_mode, birth_family_name, birth_given_names, first_given_name, used_family_name, \
           used_given_name, birth_date, sex, birth_place_code, phone, address_line, postal_code, city)), \
         written AS (INSERT INTO patients AS p (id, nir, ins_oid, identity_status, identity_method, identity_validation_mode, \
           birth_family_name, birth_given_names, first_given_name, used_family_name, used_given_name, birth_date, sex, \
           birth_place_code, phone, address_line, postal_code, city) SELECT * FROM input \
         ON CONFLICT (id) DO UPDATE SET nir = EXCLUDED.nir, ins_oid = EXCLUDED.ins_oid, \
           identity_status = EXCLUDED.identity_status, identity_method = EXCLUDED.identity_method, \
           identity_validation_mode = EXCLUDED.identity_validation_mode, birth_family_name = EXCLUDED.birth_family_name, \
           birth_given_names = EXCLUDED.birth_given_names, first_given_name = EXCLUDED.first_given_name, \
           used_family_name = EXCLUDED.used_family_name, used_given_name = EXCLUDED.used_given_name, \
           birth_date = EXCLUDED.birth_date, sex = EXCLUDED.sex, birth_place_code = EXCLUDED.birth_place_code, \
           phone = EXCLUDED.phone, address_line = EXCLUDED.address_line, postal_code = EXCLUDED.postal_code, \
           city = EXCLUDED.city, version = p.version + 1, updated_at = now() \
         WHERE (p.nir, p.ins_oid, p.identity_status, p.identity_method, p.identity_validation_mode, p.birth_family_name, \
           p.birth_given_names, p.first_given_name, p.used_family_name, p.used_given_name, p.birth_date, p.sex, \
           p.birth_place_code, p.phone, p.address_line, p.postal_code, p.city) IS DISTINCT FROM \
           (EXCLUDED.nir, EXCLUDED.ins_oid, EXCLUDED.identity_status, EXCLUDED.identity_method, \
           EXCLUDED.identity_validation_mode, EXCLUDED.birth_family_name, EXCLUDED.birth_given_names, \
           EXCLUDED.first_given_name, EXCLUDED.used_family_name, EXCLUDED.used_given_name, EXCLUDED.birth_date, \
           EXCLUDED.sex, EXCLUDED.birth_place_code, EXCLUDED.phone, EXCLUDED.address_line, EXCLUDED.postal_code, \
           EXCLUDED.city) RETURNING 1) \
         SELECT count(*) AS n FROM written";

/// Patients set-wise: one statement for the batch; a row already as given is left alone (no new
/// version, no change-feed entry). Returns how many rows were written.
async fn upsert_patients(conn: &mut AsyncPgConnection, rows: &[PatientLine<'_>]) -> Result<u64, FhirError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let col = |f: &dyn Fn(&PatientRow) -> Option<String>| rows.iter().map(|(_, r, _)| f(r)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
    let changed: Changed = diesel::sql_query(UPSERT_PATIENTS)
        .bind::<Array<SqlUuid>, _>(ids.clone())
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.ins.as_ref().map(|(n, _)| n.clone())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.ins.as_ref().map(|(_, o)| (*o).to_owned())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| Some(r.identity_status.to_owned())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.identity_method.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.validation_mode.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| Some(r.birth_family_name.clone())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| Some(r.birth_given_names.clone())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| Some(r.first_given_name.clone())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.used_family_name.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.used_given_name.clone()))
        .bind::<Array<Date>, _>(rows.iter().map(|(_, r, _)| r.birth_date).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(col(&|r| Some(r.sex.to_owned())))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.birth_place_code.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.phone.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.address_line.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.postal_code.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(&|r| r.city.clone()))
        .get_result(conn)
        .await?;
    // The LIS's other identifiers of its patients (the INS is a column of its own).
    let (mut kinds, mut systems, mut values, mut owners) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, _, identifiers) in rows {
        for (system, value) in identifiers.iter() {
            if !system.starts_with("urn:oid:1.2.250.1.213.1.4.") {
                kinds.push("Patient".to_owned());
                systems.push(system.clone());
                values.push(value.clone());
                owners.push(*id);
            }
        }
    }
    if !owners.is_empty() {
        #[derive(diesel::QueryableByName)]
        struct Clash {
            #[diesel(sql_type = Bool)]
            clash: bool,
        }
        // An identifier another patient holds refuses the batch (and then the line), like the REST write.
        let clash: Clash = diesel::sql_query(
            "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[]) AS i(t, s, v, r)), \
             ins AS (INSERT INTO fhir_identifiers (resource_type, system, value, resource_id) \
               SELECT t, s, v, r FROM input ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM input i JOIN fhir_identifiers f ON (f.resource_type, f.system, f.value) = (i.t, i.s, i.v) \
               WHERE f.resource_id <> i.r) AS clash",
        )
        .bind::<Array<Text>, _>(kinds)
        .bind::<Array<Text>, _>(systems)
        .bind::<Array<Text>, _>(values)
        .bind::<Array<SqlUuid>, _>(owners)
        .get_result(conn)
        .await?;
        if clash.clash {
            return Err(
                FhirError::at("Patient.identifier", "another Patient already has this identifier").code("duplicate"),
            );
        }
    }
    Ok(changed.n as u64)
}
