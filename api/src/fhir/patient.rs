//! `Patient`, with the INS as FR Core carries it: the matricule as an identifier of OID
//! 1.2.250.1.213.1.4.8 (INS-NIR, key checked) or .9 (INS-NIA) (.10/.11 for test matricules), the
//! identity reliability extension (status, collection method, validation document), the birth name
//! (`use = official`) and the used name (`use = usual`), the birth place's INSEE code.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::patients;
use mobile_contracts::nir::Nir;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::json::{Obj, coding_code, identifier, printable, reference};
use super::outcome::FhirError;
use super::store::{Expect, Stored, VersionedWrite, insert_or_bump, meta, precondition};

/// The INS matricule's OIDs, by what they hold (FR Core, ANS).
pub const OID_NIR: &str = "1.2.250.1.213.1.4.8";
/// INS-NIA: the provisional number of people not yet registered.
pub const OID_NIA: &str = "1.2.250.1.213.1.4.9";
const OID_NIR_TEST: &str = "1.2.250.1.213.1.4.10";
const OID_NIA_TEST: &str = "1.2.250.1.213.1.4.11";
const RELIABILITY: &str = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability";
const STATUS_SYSTEM: &str = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status";
const METHOD_SYSTEM: &str = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-method-collection";
const MODE_SYSTEM: &str = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-mode-validation-identity";
const BIRTH_PLACE: &str = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-place";
const METHODS: [&str; 6] = ["SM", "CV", "INSI", "CB", "RFID", "AV"];
const MODES: [&str; 13] = [
    "AN", "CC", "CE", "CM", "CN", "CS", "LE", "PA", "PC", "TC", "DC", "AC", "IE",
];

/// A patient as LabEdge stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientRow {
    /// The INS matricule and its OID.
    pub ins: Option<(String, &'static str)>,
    /// provisional, recovered, validated or qualified.
    pub identity_status: &'static str,
    /// How the traits were collected (FR Core code).
    pub identity_method: Option<String>,
    /// Which document validated the identity (FR Core code).
    pub validation_mode: Option<String>,
    pub birth_family_name: String,
    pub birth_given_names: String,
    pub first_given_name: String,
    pub used_family_name: Option<String>,
    pub used_given_name: Option<String>,
    pub birth_date: Date,
    /// F, M or I.
    pub sex: &'static str,
    pub birth_place_code: Option<String>,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    /// The surviving patient, when the LIS merged this one into it (`link` replaced-by, inactive).
    pub merged_into: Option<Uuid>,
}

/// Reads and checks a Patient resource; also returns its identifiers (system, value).
pub fn parse(value: &Value) -> Result<(PatientRow, Vec<(String, String)>), FhirError> {
    let root = Obj::resource(value, "Patient")?;
    root.allow_only(
        &[
            "identifier",
            "active",
            "name",
            "telecom",
            "gender",
            "birthDate",
            "address",
            "extension",
            "link",
        ],
        true,
    )?;
    let merged_into = replaced_by(&root)?;
    match (root.bool("active")?, merged_into) {
        (Some(false), None) => {
            return Err(FhirError::at(
                root.path_of("active"),
                "an inactive Patient is one merged into another: name the survivor in link (type replaced-by)",
            )
            .code("not-supported"));
        }
        (Some(true) | None, Some(_)) => {
            return Err(FhirError::at(
                root.path_of("active"),
                "a Patient replaced by another is inactive: set active to false",
            ));
        }
        _ => {}
    }
    let (ins, identifiers) = ins_and_identifiers(&root)?;
    let (identity_status, identity_method, validation_mode) = reliability(&root)?;
    if matches!(identity_status, "recovered" | "qualified") && ins.is_none() {
        return Err(FhirError::at(
            root.path_of("identifier"),
            "a recovered or qualified identity (RECUP, QUAL) carries its INS matricule (OID 1.2.250.1.213.1.4.8 or .9)",
        )
        .code("required"));
    }
    if matches!(identity_status, "validated" | "qualified") && validation_mode.is_none() {
        return Err(FhirError::at(
            format!("{}.extension('{RELIABILITY}').extension('validationMode')", root.path()),
            "a validated or qualified identity (VALI, QUAL) names the document that was checked",
        )
        .code("required"));
    }
    let names = names(&root)?;
    let birth_date = root
        .date("birthDate")?
        .ok_or_else(|| FhirError::required(root.path_of("birthDate")))?;
    if birth_date > OffsetDateTime::now_utc().date() {
        return Err(FhirError::at(root.path_of("birthDate"), "is in the future"));
    }
    let sex = sex(&root, ins.as_ref())?;
    let (phone, address) = (phone(&root)?, address(&root)?);
    let row = PatientRow {
        ins,
        identity_status,
        identity_method,
        validation_mode,
        birth_family_name: names.birth_family,
        birth_given_names: names.birth_given.join(" "),
        first_given_name: names.birth_given[0].clone(),
        used_family_name: names.used_family,
        used_given_name: names.used_given,
        birth_date,
        sex,
        birth_place_code: birth_place(&root)?,
        phone,
        address_line: address.0,
        postal_code: address.1,
        city: address.2,
        merged_into,
    };
    Ok((row, identifiers))
}

/// The INS sex from `gender`, which must agree with the matricule's sex digit.
/// The survivor named by a `link` of type `replaced-by` (a merge decided by the LIS); the other link
/// types (`refer`, `seealso`, `replaces`) are not kept and refused rather than dropped silently.
fn replaced_by(root: &Obj<'_>) -> Result<Option<Uuid>, FhirError> {
    let mut survivor = None;
    for link in root.array("link")? {
        link.allow_only(&["other", "type"], false)?;
        let kind = link.req_str("type")?;
        if kind != "replaced-by" {
            return Err(FhirError::at(
                link.path_of("type"),
                format!(
                    "`{}` links are not supported: only replaced-by (a merge)",
                    printable(kind)
                ),
            )
            .code("not-supported"));
        }
        if survivor.is_some() {
            return Err(FhirError::at(link.path(), "a Patient is replaced by one survivor only"));
        }
        let (_, id) = reference(&link.req_obj("other")?, &["Patient"])?;
        survivor = Some(id);
    }
    Ok(survivor)
}

fn sex(root: &Obj<'_>, ins: Option<&(String, &'static str)>) -> Result<&'static str, FhirError> {
    let sex = match root.req_str("gender")? {
        "female" => "F",
        "male" => "M",
        "other" => "I",
        other => {
            return Err(FhirError::at(
                root.path_of("gender"),
                format!("`{}`: the INS traits need female, male or other", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    if let Some((nir, oid)) = ins
        && matches!(*oid, OID_NIR | OID_NIR_TEST)
        && nir_sex(nir).is_some_and(|s| s != sex)
    {
        return Err(FhirError::at(
            root.path_of("gender"),
            "contradicts the sex digit of the INS matricule",
        ));
    }
    Ok(sex)
}

fn nir_sex(nir: &str) -> Option<&'static str> {
    match nir.as_bytes().first()? {
        b'1' | b'3' | b'7' => Some("M"),
        b'2' | b'4' | b'8' => Some("F"),
        _ => None,
    }
}

type Identifiers = (Option<(String, &'static str)>, Vec<(String, String)>);

fn ins_and_identifiers(root: &Obj<'_>) -> Result<Identifiers, FhirError> {
    let mut ins = None;
    let mut all = Vec::new();
    for item in root.array("identifier")? {
        let (system, value) = identifier(&item)?;
        let oid = match system.strip_prefix("urn:oid:") {
            Some(OID_NIR) => Some(OID_NIR),
            Some(OID_NIA) => Some(OID_NIA),
            Some(OID_NIR_TEST) => Some(OID_NIR_TEST),
            Some(OID_NIA_TEST) => Some(OID_NIA_TEST),
            _ => None,
        };
        if let Some(oid) = oid {
            if ins.is_some() {
                return Err(FhirError::at(item.path(), "a patient has one INS matricule"));
            }
            // NIR and NIA share the layout and the key (the NIA's first digit is 7 or 8).
            let nir = Nir::parse(value).map_err(|e| FhirError::at(item.path_of("value"), e.to_string()))?;
            ins = Some((nir.into_inner(), oid));
            all.push((
                system.to_owned(),
                ins.as_ref().map(|(n, _)| n.clone()).unwrap_or_default(),
            ));
        } else {
            all.push((system.to_owned(), value.to_owned()));
        }
    }
    Ok((ins, all))
}

type Reliability = (&'static str, Option<String>, Option<String>);

fn reliability(root: &Obj<'_>) -> Result<Reliability, FhirError> {
    let Some(ext) = root.extension(RELIABILITY)? else {
        // Without the extension the identity is what any unchecked record is: provisional.
        return Ok(("provisional", None, None));
    };
    let sub = |name: &str| -> Result<Option<String>, FhirError> {
        let Some(item) = ext.extension(name)? else {
            return Ok(None);
        };
        let coding = item.req_obj("valueCoding")?;
        let system = match name {
            "identityStatus" => STATUS_SYSTEM,
            "methodCollection" => METHOD_SYSTEM,
            _ => MODE_SYSTEM,
        };
        Ok(Some(coding_code(&coding, system)?.to_owned()))
    };
    let status = match sub("identityStatus")?.as_deref() {
        None | Some("PROV") => "provisional",
        Some("RECUP") => "recovered",
        Some("VALI") => "validated",
        Some("QUAL") => "qualified",
        Some(other) => {
            return Err(FhirError::at(
                format!("{}.extension('identityStatus').valueCoding.code", ext.path()),
                format!("`{}` is not PROV, RECUP, VALI or QUAL", printable(other)),
            )
            .code("code-invalid"));
        }
    };
    let method = sub("methodCollection")?;
    if let Some(m) = &method
        && !METHODS.contains(&m.as_str())
    {
        return Err(FhirError::at(
            format!("{}.extension('methodCollection').valueCoding.code", ext.path()),
            format!("`{}` is not a collection method of FR Core", printable(m)),
        )
        .code("code-invalid"));
    }
    let mode = sub("validationMode")?;
    if let Some(m) = &mode
        && !MODES.contains(&m.as_str())
    {
        return Err(FhirError::at(
            format!("{}.extension('validationMode').valueCoding.code", ext.path()),
            format!("`{}` is not a validation document of FR Core", printable(m)),
        )
        .code("code-invalid"));
    }
    Ok((status, method, mode))
}

struct Names {
    birth_family: String,
    birth_given: Vec<String>,
    used_family: Option<String>,
    used_given: Option<String>,
}

fn names(root: &Obj<'_>) -> Result<Names, FhirError> {
    let mut birth = None;
    let mut used = None;
    for name in root.array("name")? {
        name.allow_only(
            &[
                "use",
                "family",
                "given",
                "text",
                "prefix",
                "suffix",
                "period",
                "extension",
            ],
            false,
        )?;
        match name.str("use")? {
            Some("official") if birth.is_none() => birth = Some(name),
            Some("usual") if used.is_none() => used = Some(name),
            Some("official" | "usual") => {
                return Err(FhirError::at(
                    name.path_of("use"),
                    "one official (birth) and one usual name at most",
                ));
            }
            _ => {}
        }
    }
    let birth = birth.ok_or_else(|| {
        FhirError::at(
            root.path_of("name"),
            "the birth name (use = official) is required by the INS traits",
        )
        .code("required")
    })?;
    let family = bounded(&birth, "family", 100)?.ok_or_else(|| FhirError::required(birth.path_of("family")))?;
    let given = birth.str_array("given")?;
    if given.is_empty() {
        return Err(FhirError::required(birth.path_of("given")));
    }
    let joined = given.join(" ");
    if joined.chars().count() > 200 || given[0].chars().count() > 100 {
        return Err(FhirError::at(
            birth.path_of("given"),
            "too long (200 characters in all, 100 for the first)",
        ));
    }
    let (used_family, used_given) = match &used {
        Some(u) => (
            bounded(u, "family", 100)?,
            u.str_array("given")?.into_iter().next().map(|g| (*g).to_owned()),
        ),
        None => (None, None),
    };
    Ok(Names {
        birth_family: family,
        birth_given: given.iter().map(|g| (*g).to_owned()).collect(),
        used_family,
        used_given,
    })
}

fn bounded(obj: &Obj<'_>, name: &str, max: usize) -> Result<Option<String>, FhirError> {
    match obj.str(name)? {
        Some(s) if s.chars().count() > max => {
            Err(FhirError::at(obj.path_of(name), format!("at most {max} characters")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

fn birth_place(root: &Obj<'_>) -> Result<Option<String>, FhirError> {
    let Some(ext) = root.extension(BIRTH_PLACE)? else {
        return Ok(None);
    };
    let address = ext.req_obj("valueAddress")?;
    let code = address.req_str("district")?;
    let valid = code.len() == 5
        && code.as_bytes()[0].is_ascii_digit()
        && (code.as_bytes()[1].is_ascii_digit() || matches!(code.as_bytes()[1], b'A' | b'B'))
        && code.as_bytes()[2..].iter().all(u8::is_ascii_digit);
    if !valid {
        return Err(FhirError::at(
            address.path_of("district"),
            "must be the INSEE code (COG) of the birth commune or country: 5 characters",
        ));
    }
    Ok(Some(code.to_owned()))
}

fn phone(root: &Obj<'_>) -> Result<Option<String>, FhirError> {
    for telecom in root.array("telecom")? {
        telecom.allow_only(&["system", "value", "use", "rank", "period"], false)?;
        if telecom.str("system")? == Some("phone") {
            return bounded(&telecom, "value", 30);
        }
    }
    Ok(None)
}

type Address = (Option<String>, Option<String>, Option<String>);

fn address(root: &Obj<'_>) -> Result<Address, FhirError> {
    let addresses = root.array("address")?;
    let Some(address) = addresses.as_slice().first() else {
        return Ok((None, None, None));
    };
    address.allow_only(
        &[
            "use",
            "type",
            "text",
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
            "period",
            "extension",
        ],
        false,
    )?;
    let line = address.str_array("line")?.join(", ");
    Ok((
        (!line.is_empty()).then_some(line),
        bounded(address, "postalCode", 10)?,
        bounded(address, "city", 100)?,
    ))
}

type Loaded = (
    Uuid,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Date,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    OffsetDateTime,
    Option<Uuid>,
);

/// The Patient of this id, rendered.
pub async fn load(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Stored>> {
    let row: Option<Loaded> = patients::table
        .find(id)
        .select((
            patients::id,
            patients::nir,
            patients::ins_oid,
            patients::identity_status,
            patients::identity_method,
            patients::identity_validation_mode,
            patients::birth_family_name,
            patients::birth_given_names,
            patients::first_given_name,
            patients::used_family_name,
            patients::used_given_name,
            patients::birth_date,
            patients::sex,
            patients::birth_place_code,
            patients::phone,
            patients::address_line,
            patients::postal_code,
            patients::city,
            patients::version,
            patients::updated_at,
            patients::merged_into,
        ))
        .first(conn)
        .await
        .optional()?;
    let identifiers = super::store::identifiers(conn, "Patient", id).await?;
    Ok(row.map(|r| render(r, identifiers)))
}

fn render(r: Loaded, identifiers: Vec<(String, String)>) -> Stored {
    let (id, nir, oid, status, method, mode, family, given, _first, used_family, used_given, birth_date, sex) =
        (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12);
    let mut resource = json!({
        "resourceType": "Patient",
        "id": id.to_string(),
        "meta": meta(r.18, r.19),
        "gender": match sex.as_str() { "F" => "female", "M" => "male", _ => "other" },
        "birthDate": birth_date.to_string(),
    });
    let mut ids: Vec<Value> = Vec::new();
    if let (Some(nir), Some(oid)) = (&nir, &oid) {
        ids.push(json!({"use": "official", "system": format!("urn:oid:{oid}"), "value": nir}));
    }
    for (system, value) in identifiers {
        if !system.starts_with("urn:oid:1.2.250.1.213.1.4.") {
            ids.push(json!({"system": system, "value": value}));
        }
    }
    if !ids.is_empty() {
        resource["identifier"] = Value::Array(ids);
    }
    let mut names = vec![json!({"use": "official", "family": family, "given": given.split(' ').collect::<Vec<_>>()})];
    if used_family.is_some() || used_given.is_some() {
        let mut used = json!({"use": "usual"});
        if let Some(f) = used_family {
            used["family"] = json!(f);
        }
        if let Some(g) = used_given {
            used["given"] = json!([g]);
        }
        names.push(used);
    }
    resource["name"] = Value::Array(names);
    let code = match status.as_str() {
        "recovered" => "RECUP",
        "validated" => "VALI",
        "qualified" => "QUAL",
        _ => "PROV",
    };
    let mut reliability =
        vec![json!({"url": "identityStatus", "valueCoding": {"system": STATUS_SYSTEM, "code": code}})];
    if let Some(m) = method {
        reliability.push(json!({"url": "methodCollection", "valueCoding": {"system": METHOD_SYSTEM, "code": m}}));
    }
    if let Some(m) = mode {
        reliability.push(json!({"url": "validationMode", "valueCoding": {"system": MODE_SYSTEM, "code": m}}));
    }
    let mut extensions = vec![json!({"url": RELIABILITY, "extension": reliability})];
    if let Some(place) = r.13 {
        extensions.push(json!({"url": BIRTH_PLACE, "valueAddress": {"district": place}}));
    }
    resource["extension"] = Value::Array(extensions);
    if let Some(phone) = r.14 {
        resource["telecom"] = json!([{"system": "phone", "value": phone}]);
    }
    if r.15.is_some() || r.16.is_some() || r.17.is_some() {
        let mut address = json!({});
        if let Some(line) = r.15 {
            address["line"] = json!([line]);
        }
        if let Some(pc) = r.16 {
            address["postalCode"] = json!(pc);
        }
        if let Some(city) = r.17 {
            address["city"] = json!(city);
        }
        resource["address"] = json!([address]);
    }
    if let Some(survivor) = r.20 {
        resource["active"] = json!(false);
        resource["link"] = json!([{"other": {"reference": format!("Patient/{survivor}")}, "type": "replaced-by"}]);
    }
    Stored {
        id,
        version: r.18,
        last_updated: r.19,
        resource,
    }
}

/// Creates or replaces the Patient `id`.
pub async fn write(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    row: &PatientRow,
    expect: Expect,
) -> Result<VersionedWrite, FhirError> {
    let values = (
        patients::nir.eq(row.ins.as_ref().map(|(n, _)| n.clone())),
        patients::ins_oid.eq(row.ins.as_ref().map(|(_, o)| (*o).to_owned())),
        patients::identity_status.eq(row.identity_status),
        patients::identity_method.eq(&row.identity_method),
        patients::identity_validation_mode.eq(&row.validation_mode),
        patients::birth_family_name.eq(&row.birth_family_name),
        patients::birth_given_names.eq(&row.birth_given_names),
        patients::first_given_name.eq(&row.first_given_name),
        patients::used_family_name.eq(&row.used_family_name),
        patients::used_given_name.eq(&row.used_given_name),
        patients::birth_date.eq(row.birth_date),
        patients::sex.eq(row.sex),
        patients::birth_place_code.eq(&row.birth_place_code),
        patients::phone.eq(&row.phone),
        patients::address_line.eq(&row.address_line),
        patients::postal_code.eq(&row.postal_code),
        patients::city.eq(&row.city),
        patients::merged_into.eq(row.merged_into),
    );
    let current: Option<(i64, Option<Uuid>)> = patients::table
        .find(id)
        .select((patients::version, patients::merged_into))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    precondition(current.map(|c| c.0), expect, "Patient", id)?;
    let already = current.and_then(|c| c.1);
    if already.is_some() && already != row.merged_into {
        return Err(FhirError::conflict(
            "this Patient was merged into another: a merge is not undone or redirected (correct the survivor instead)",
        ));
    }
    if let Some(survivor) = row.merged_into.filter(|_| already.is_none()) {
        if current.is_none() {
            return Err(FhirError::at(
                "Patient.link",
                "only an existing Patient is merged into another",
            ));
        }
        merge(conn, id, survivor).await?;
    }
    Ok(insert_or_bump!(conn, patients, id, current.map(|c| c.0), values))
}

/// Moves patient `old`'s prescriptions, appointments and collections to `survivor`, in the caller's
/// transaction: the survivor exists, is not `old`, and was not merged itself (no chains). Each moved
/// prescription and appointment gets a new version, so the change feed takes them to the labs' gateways
/// (which move their own collections when the merged patient reaches them).
async fn merge(conn: &mut AsyncPgConnection, old: Uuid, survivor: Uuid) -> Result<(), FhirError> {
    use diesel_async::SimpleAsyncConnection;
    use labedge_schema::cloud::schema::{appointments, collections, prescriptions};

    if survivor == old {
        return Err(FhirError::at(
            "Patient.link[0].other",
            "a Patient is not merged into itself",
        ));
    }
    let target: Option<Option<Uuid>> = patients::table
        .find(survivor)
        .select(patients::merged_into)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match target {
        None => {
            return Err(FhirError::at("Patient.link[0].other", "names no Patient of this server").code("not-found"));
        }
        Some(Some(_)) => {
            return Err(FhirError::at(
                "Patient.link[0].other",
                "the survivor was itself merged into another Patient: name that one",
            ));
        }
        Some(None) => {}
    }
    // A collection names its patient through its prescription and its appointment: both checks wait
    // for the commit while the three move.
    conn.batch_execute(
        "SET CONSTRAINTS collections_prescription_patient_fkey, collections_appointment_patient_fkey DEFERRED",
    )
    .await?;
    let now = OffsetDateTime::now_utc();
    diesel::update(prescriptions::table.filter(prescriptions::patient_id.eq(old)))
        .set((
            prescriptions::patient_id.eq(survivor),
            prescriptions::version.eq(prescriptions::version + 1),
            prescriptions::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    diesel::update(appointments::table.filter(appointments::patient_id.eq(old)))
        .set((
            appointments::patient_id.eq(survivor),
            appointments::version.eq(appointments::version + 1),
            appointments::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    diesel::update(collections::table.filter(collections::patient_id.eq(old)))
        .set(collections::patient_id.eq(survivor))
        .execute(conn)
        .await?;
    Ok(())
}
