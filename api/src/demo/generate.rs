//! The synthetic data set, built in memory by pure functions of the arguments and today's date: no
//! database and no slow work here, so that it can be checked and timed on its own.

use std::collections::HashSet;

use mobile_contracts::nir::Nir;
use time::{Date, Duration, Time, Weekday};
use uuid::Uuid;

use super::SeedArgs;
use super::catalog::{self, Audience, EXAMS, Exam, PANELS, Panel, TUBE_TYPES, TubeType};
use super::clock;
use super::names::{self, Commune, Era, LabSite};
use super::rng::Rng;
use super::rows::{AppointmentRow, LabRow, PatientRow, PrescribedExamRow, PrescriptionRow, StaffRow};

/// OID of an INS whose matricule is the NIR.
pub const INS_OID_NIR: &str = "1.2.250.1.213.1.4.8";

/// Days of past home rounds. Rounds have a fixed size per sampler, so a month of them would outweigh
/// the lab visits of a demo-sized network; a week gives the tablets recent history.
const PAST_ROUND_DAYS: u16 = 7;

/// Roles of the staff, as stored.
pub const ROLES: [&str; 3] = ["nurse", "home_sampler", "lab_admin"];

/// Everything that gets inserted, in insertion order.
#[derive(Debug, Default)]
pub struct DataSet {
    /// Labs, central first.
    pub labs: Vec<LabRow>,
    /// Staff, hashes still empty.
    pub staff: Vec<StaffRow>,
    /// Tube types.
    pub tube_types: Vec<TubeType>,
    /// Exam catalog.
    pub exams: Vec<Exam>,
    /// Patients.
    pub patients: Vec<PatientRow>,
    /// Prescriptions.
    pub prescriptions: Vec<PrescriptionRow>,
    /// Exams of the prescriptions.
    pub prescribed_exams: Vec<PrescribedExamRow>,
    /// Lab and home appointments.
    pub appointments: Vec<AppointmentRow>,
}

/// Builds the whole data set for `args`, with appointments around `today` (a Paris date).
pub fn generate(args: &SeedArgs, today: Date) -> DataSet {
    let mut data = DataSet {
        tube_types: TUBE_TYPES.to_vec(),
        exams: EXAMS.to_vec(),
        ..DataSet::default()
    };
    let sites: Vec<&LabSite> = std::iter::once(&names::CENTRAL)
        .chain(names::PROXIMITY.iter().take(args.proximity_labs.into()))
        .collect();
    let mut lab_rng = Rng::for_stream(args.seed, "labs");
    let mut labs: Vec<Lab> = sites
        .iter()
        .enumerate()
        .map(|(index, site)| {
            let id = lab_rng.uuid();
            data.labs.push(LabRow {
                id,
                code: site.code.to_owned(),
                name: site.name.to_owned(),
                kind: if index == 0 { "central" } else { "proximity" },
            });
            Lab {
                id,
                site,
                nurses: Vec::new(),
                samplers: Vec::new(),
                patients: Vec::new(),
                prescribers: Vec::new(),
            }
        })
        .collect();
    add_staff(args, &mut labs, &mut data.staff);
    add_prescribers(args.seed, &mut labs);
    add_patients(args, &mut labs, &mut data.patients);
    let mut clinic = Clinic {
        today,
        data: &mut data,
        rng: Rng::for_stream(args.seed, "visits"),
    };
    for lab in &labs {
        clinic.lab_visits(args, lab);
    }
    let mut rounds_rng = Rng::for_stream(args.seed, "rounds");
    for lab in &labs {
        clinic.rng = Rng::for_stream(rounds_rng.next_u64(), lab.site.code);
        clinic.home_rounds(args, lab);
    }
    data
}

/// A lab while its data is being built.
struct Lab {
    id: Uuid,
    site: &'static LabSite,
    nurses: Vec<Uuid>,
    samplers: Vec<Uuid>,
    /// Indexes into the patient rows.
    patients: Vec<usize>,
    prescribers: Vec<(String, String)>,
}

/// ASCII, lower case, what a login may hold: `Lefèvre` → `lefevre`, `D'Almeida` → `dalmeida`,
/// `Le Goff` → `le-goff`.
pub fn login_slug(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' => "a",
            'ç' => "c",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'í' | 'ì' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => "o",
            'ş' => "s",
            'ú' | 'ù' | 'û' | 'ü' => "u",
            'ÿ' => "y",
            'æ' => "ae",
            'œ' => "oe",
            ' ' | '-' => "-",
            'a'..='z' | '0'..='9' => {
                slug.push(c);
                continue;
            }
            _ => "",
        };
        slug.push_str(folded);
    }
    slug
}

fn add_staff(args: &SeedArgs, labs: &mut [Lab], staff: &mut Vec<StaffRow>) {
    let mut rng = Rng::for_stream(args.seed, "staff");
    let roles = [
        (ROLES[0], args.nurses_per_lab),
        (ROLES[1], args.home_samplers_per_lab),
        (ROLES[2], 1),
    ];
    for lab in labs {
        let mut logins = HashSet::new();
        for (role, count) in roles {
            for _ in 0..count {
                let given = rng.choose(names::WORKING_GIVEN_NAMES);
                let family = rng.choose(names::FAMILY_NAMES);
                let initial: String = login_slug(given).chars().take(1).collect();
                let base: String = format!("{initial}.{}", login_slug(family)).chars().take(29).collect();
                let login = (1..)
                    .map(|n| if n == 1 { base.clone() } else { format!("{base}{n}") })
                    .find(|candidate| !logins.contains(candidate))
                    .unwrap_or_default();
                logins.insert(login.clone());
                let id = rng.uuid();
                match role {
                    "nurse" => lab.nurses.push(id),
                    "home_sampler" => lab.samplers.push(id),
                    _ => {}
                }
                staff.push(StaffRow {
                    id,
                    lab_id: lab.id,
                    login,
                    display_name: format!("{given} {family}"),
                    role,
                    pin_hash: String::new(),
                    password_hash: None,
                });
            }
        }
    }
}

/// An RPPS number: `10`, eight digits and a Luhn check digit, as on real prescriptions.
fn rpps(rng: &mut Rng) -> String {
    let mut digits: Vec<u32> = vec![1, 0];
    digits.extend((0..8).map(|_| u32::try_from(rng.below(10)).unwrap_or(0)));
    // Luhn: double every second digit from the right, the check digit being the rightmost.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                *d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from_digit(*d, 10).unwrap_or('0')).collect()
}

fn add_prescribers(seed: u64, labs: &mut [Lab]) {
    let mut rng = Rng::for_stream(seed, "prescribers");
    for lab in labs {
        let count = rng.range(12, 20);
        lab.prescribers = (0..count)
            .map(|_| {
                let name = format!(
                    "Dr {} {}",
                    rng.pick(names::WORKING_GIVEN_NAMES),
                    rng.pick(names::FAMILY_NAMES)
                );
                (name, rpps(&mut rng))
            })
            .collect();
    }
}

/// Given names of one sex and era, so that picking one is a single draw.
struct GivenNames {
    by_era: [[Vec<&'static str>; 3]; 2],
}

impl GivenNames {
    fn new() -> Self {
        let split = |list: &[(&'static str, Era)]| {
            [Era::Old, Era::Middle, Era::Young].map(|era| {
                list.iter()
                    .filter(|(_, e)| *e == era)
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
            })
        };
        Self {
            by_era: [split(names::GIVEN_NAMES_F), split(names::GIVEN_NAMES_M)],
        }
    }

    fn pick(&self, rng: &mut Rng, female: bool, era: Era) -> &'static str {
        let list = &self.by_era[usize::from(!female)][era as usize];
        rng.choose(list)
    }
}

fn birth_date(rng: &mut Rng) -> Date {
    // Town labs see more older patients than the census would suggest.
    let (first, last) = *rng.weighted(&[
        ((1930, 1944), 14),
        ((1945, 1959), 24),
        ((1960, 1979), 25),
        ((1980, 1999), 22),
        ((2000, 2024), 15),
    ]);
    let year = i32::try_from(rng.range(first, last)).unwrap_or(1970);
    let days = time::util::days_in_year(year);
    let ordinal = u16::try_from(rng.range(1, i64::from(days))).unwrap_or(1);
    Date::from_ordinal_date(year, ordinal).unwrap_or(Date::MIN)
}

fn birth_place(rng: &mut Rng) -> &'static str {
    match rng.below(100) {
        0..52 => rng.pick(names::COMMUNES).insee,
        52..65 => rng.choose(names::RHONE_BIRTH_PLACES),
        65..85 => rng.choose(names::OTHER_BIRTH_PLACES),
        85..88 => rng.choose(names::CORSICA_BIRTH_PLACES),
        _ => rng.choose(names::FOREIGN_BIRTH_PLACES),
    }
}

/// A NIR consistent with the identity, unique in the data set (the order number is drawn again on a
/// collision, as INSEE gives the next free one).
fn nir(rng: &mut Rng, female: bool, birth: Date, place: &str, taken: &mut HashSet<String>) -> Option<String> {
    let sex = if female { 2 } else { 1 };
    let year = birth.year() % 100;
    let month = u8::from(birth.month());
    for _ in 0..1_000 {
        let order = rng.range(1, 999);
        let prefix = format!("{sex}{year:02}{month:02}{place}{order:03}");
        let key = Nir::compute_key(&prefix)?;
        let full = format!("{prefix}{key:02}");
        if taken.insert(full.clone()) {
            return Some(full);
        }
    }
    None
}

fn phone(rng: &mut Rng, era: Era) -> String {
    let lead = match rng.below(100) {
        0..55 => "6",
        55..75 if era != Era::Old => "7",
        _ => rng.choose(&["4 72", "4 78", "4 37", "4 26", "4 81"]),
    };
    let groups = if lead.len() == 1 { 4 } else { 3 };
    let mut number = format!("+33 {lead}");
    for _ in 0..groups {
        number.push_str(&format!(" {:02}", rng.below(100)));
    }
    number
}

/// A street address; `with_complement` may add a building, flat or residence, as people write them.
fn street_address(rng: &mut Rng, commune: &Commune, with_complement: bool) -> String {
    let number = rng.range(1, 160);
    let bis = if rng.chance(0.04) { " bis" } else { "" };
    let street = rng.pick(commune.streets);
    let draw = if with_complement { rng.below(100) } else { 100 };
    let complement = match draw {
        0..10 => format!(", bât. {}", rng.pick(&["A", "B", "C", "D"])),
        10..16 => format!(", appt {}", rng.range(1, 120)),
        16..19 => format!(
            ", résidence {}",
            rng.pick(&["Les Cèdres", "Le Parc", "Les Érables", "Bellevue"])
        ),
        _ => String::new(),
    };
    format!("{number}{bis} {street}{complement}")
}

fn lab_commune(rng: &mut Rng, site: &LabSite) -> &'static Commune {
    let codes = if site.near.is_empty() || rng.chance(0.75) {
        site.home
    } else {
        site.near
    };
    names::commune_by_postal_code(rng.choose(codes)).unwrap_or(&names::COMMUNES[0])
}

fn add_patients(args: &SeedArgs, labs: &mut [Lab], patients: &mut Vec<PatientRow>) {
    // Identities come from their own stream, so that they do not depend on the network's shape.
    let mut rng = Rng::for_stream(args.seed, "patients");
    let mut where_rng = Rng::for_stream(args.seed, "addresses");
    let given_names = GivenNames::new();
    let mut taken = HashSet::with_capacity(usize::try_from(args.patients).unwrap_or(0));
    // The central lab, in Lyon itself, sees twice the patients of a suburban lab.
    let lab_weights: Vec<(usize, u32)> = (0..labs.len()).map(|i| (i, if i == 0 { 2 } else { 1 })).collect();
    patients.reserve(usize::try_from(args.patients).unwrap_or(0));
    for _ in 0..args.patients {
        let id = rng.uuid();
        let female = rng.chance(0.52);
        let birth = birth_date(&mut rng);
        let era = Era::of_year(birth.year());
        let first = given_names.pick(&mut rng, female, era);
        let mut given = vec![first];
        let extra = *rng.weighted(&[(0, 35), (1, 45), (2, 20)]);
        for _ in 0..extra {
            // Middle names are often a grandparent's: an older era is as likely as the own one.
            let middle_era = if rng.chance(0.5) { Era::Old } else { era };
            let middle = given_names.pick(&mut rng, female, middle_era);
            if !given.contains(&middle) {
                given.push(middle);
            }
        }
        let mut family = (rng.choose(names::FAMILY_NAMES)).to_owned();
        // Since 2005 a child may carry both parents' names.
        if era == Era::Young && rng.chance(0.05) {
            family = format!("{family} {}", rng.pick(names::FAMILY_NAMES));
        }
        // A fixed year rather than today's, so that identities do not change with the date.
        let age_2025 = 2025 - birth.year();
        let used_family_name = ((female && age_2025 >= 23 && rng.chance(0.5)) || rng.chance(0.01))
            .then(|| (rng.choose(names::FAMILY_NAMES)).to_owned())
            .filter(|used| *used != family);
        let used_given_name = (given.len() > 1 && rng.chance(0.03)).then(|| given[1]);
        let place = birth_place(&mut rng);
        let status = *rng.weighted(&[
            ("qualified", 72),
            ("validated", 10),
            ("recovered", 10),
            ("provisional", 8),
        ]);
        // Recovered and qualified identities come from the INS teleservice: always a NIR and its OID.
        // The others may have a NIR read from the carte Vitale, which is not an INS: no OID.
        let (nir, ins_oid) = match status {
            "qualified" | "recovered" => (nir(&mut rng, female, birth, place, &mut taken), Some(INS_OID_NIR)),
            "validated" if rng.chance(0.3) => (nir(&mut rng, female, birth, place, &mut taken), None),
            "provisional" if rng.chance(0.1) => (nir(&mut rng, female, birth, place, &mut taken), None),
            _ => (None, None),
        };
        let phone = rng.chance(0.96).then(|| phone(&mut rng, era));

        let lab = *where_rng.weighted(&lab_weights);
        let commune = lab_commune(&mut where_rng, labs[lab].site);
        let has_address = where_rng.chance(0.98);
        labs[lab].patients.push(patients.len());
        patients.push(PatientRow {
            id,
            nir,
            ins_oid,
            identity_status: status,
            birth_family_name: family,
            birth_given_names: given.join(" "),
            first_given_name: first,
            used_family_name,
            used_given_name,
            birth_date: birth,
            sex: if female { "F" } else { "M" },
            birth_place_code: Some(place),
            phone,
            address_line: has_address.then(|| street_address(&mut where_rng, commune, true)),
            postal_code: has_address.then_some(commune.postal_code),
            city: has_address.then_some(commune.city),
        });
    }
}

/// Age in years on a date.
fn age_on(birth: Date, on: Date) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

fn panel_fits(panel: &Panel, female: bool, age: i32) -> bool {
    match panel.audience {
        Audience::Anyone => true,
        Audience::Adult => age >= 18,
        Audience::OlderMen => !female && age >= 45,
        Audience::Pregnancy => female && (16..=45).contains(&age),
        Audience::Elderly => age >= 65,
    }
}

/// Exams a prescriber often adds to whatever else is asked for.
const ADD_ONS: &[&str] = &[
    "NFS",
    "CRP",
    "CREAT",
    "GLYCEMIE",
    "TSH",
    "VITD",
    "FERRITINE",
    "HBA1C",
    "IONO",
];

/// Notes prescribers write, by how often they appear.
const NOTES: &[(Option<&str>, u32)] = &[
    (None, 85),
    (Some("Renouvelable 3 mois"), 4),
    (Some("Contrôle dans un mois"), 3),
    (Some("Résultats à transmettre au médecin traitant"), 3),
    (Some("Patient diabétique de type 2"), 2),
    (Some("Prélèvement au pli du coude difficile : veines fragiles"), 2),
    (Some("Urgent : appeler le cabinet si résultat anormal"), 1),
];

struct Clinic<'a> {
    today: Date,
    data: &'a mut DataSet,
    rng: Rng,
}

impl Clinic<'_> {
    /// Adds a prescription for a patient, chosen to fit their age and sex.
    fn prescription(&mut self, lab: &Lab, patient: usize, sampled_on: Date, status: &'static str, home: bool) -> Uuid {
        let rng = &mut self.rng;
        let row = &self.data.patients[patient];
        let female = row.sex == "F";
        let age = age_on(row.birth_date, self.today);
        let fitting: Vec<(&Panel, u32)> = PANELS
            .iter()
            .filter(|panel| panel_fits(panel, female, age))
            // Home visits are mostly anticoagulant follow-ups and chronic care of the elderly.
            .map(|panel| {
                let home_bonus = if home && panel.audience == Audience::Elderly {
                    4
                } else {
                    1
                };
                (panel, panel.weight * home_bonus)
            })
            .collect();
        let panel = *rng.weighted(&fitting);
        let mut exams: Vec<&'static str> = Vec::with_capacity(6);
        for (rank, &code) in panel.exams.iter().enumerate() {
            // The first exams of a panel are the ones nearly always asked for.
            let keep = [0.95, 0.8, 0.65, 0.5, 0.4, 0.3, 0.25, 0.2]
                .get(rank)
                .copied()
                .unwrap_or(0.2);
            if exams.len() < 6 && rng.chance(keep) {
                exams.push(code);
            }
        }
        if exams.is_empty() {
            exams.push(panel.exams[0]);
        }
        if exams.len() < 6 && rng.chance(0.15) {
            let other = rng.choose(ADD_ONS);
            if !exams.contains(&other) {
                exams.push(other);
            }
        }
        let needs_fasting = exams
            .iter()
            .any(|code| catalog::exam(code).is_some_and(|exam| exam.fasting));
        let fasting = rng.chance(if needs_fasting { 0.4 } else { 0.03 });
        let notes = if panel.exams == ["TP_INR"] && rng.chance(0.5) {
            Some("Patient sous AVK : INR cible entre 2 et 3".to_owned())
        } else if rng.chance(0.15) {
            Some(format!("Renseignements cliniques : {}", panel.name))
        } else {
            rng.weighted(NOTES).map(str::to_owned)
        };
        let (prescriber_name, prescriber_rpps) = rng.pick(&lab.prescribers).clone();
        let issued_on = sampled_on.min(self.today) - Duration::days(rng.range(0, 21));
        let id = rng.uuid();
        self.data
            .prescribed_exams
            .extend(exams.iter().map(|&code| PrescribedExamRow {
                prescription_id: id,
                exam_code: code,
            }));
        self.data.prescriptions.push(PrescriptionRow {
            id,
            patient_id: row.id,
            lab_id: lab.id,
            prescriber_name,
            prescriber_rpps,
            issued_on,
            fasting,
            status,
            notes,
        });
        id
    }

    /// Status of a visit and of its prescription, from the visit's day.
    fn outcome(&mut self, day: i64, home: bool) -> (&'static str, Option<&'static str>, &'static str) {
        if day >= 0 {
            return ("scheduled", None, "open");
        }
        let rng = &mut self.rng;
        let (no_show, cancelled) = if home { (4, 3) } else { (7, 5) };
        let draw = rng.below(100);
        if draw < no_show {
            let reason = if home {
                "Patient absent au domicile"
            } else {
                "Patient absent au rendez-vous"
            };
            ("no_show", Some(reason), "open")
        } else if draw < no_show + cancelled {
            let reason = rng.choose(&[
                "Annulé par le patient",
                "Patient hospitalisé",
                "Reporté à la demande du patient",
                "Ordonnance remplacée par le médecin",
            ]);
            (
                "cancelled",
                Some(reason),
                if rng.chance(0.5) { "cancelled" } else { "open" },
            )
        } else {
            // Results are usually validated within two days of the sampling.
            let done = day <= -2 && rng.chance(0.92);
            ("collected", None, if done { "completed" } else { "sampled" })
        }
    }

    /// Visits at the lab: prescriptions spread over the window, most with an appointment.
    fn lab_visits(&mut self, args: &SeedArgs, lab: &Lab) {
        let first = -i64::from(args.days_back);
        let last = i64::from(args.days_ahead);
        for &patient in &lab.patients {
            let count = *self.rng.weighted(&[(0, 25), (1, 55), (2, 16), (3, 4)]);
            for _ in 0..count {
                // One prescription in four waits for the patient to walk in, without an appointment.
                if self.rng.chance(0.25) {
                    let today = self.today;
                    self.prescription(lab, patient, today, "open", false);
                    continue;
                }
                let mut day = self.rng.range(first, last);
                let mut date = self.today + Duration::days(day);
                // Labs are closed on Sundays: the visit moves to the Saturday before or the Monday after.
                if date.weekday() == Weekday::Sunday {
                    if day > first {
                        day -= 1;
                    } else if day < last {
                        day += 1;
                    } else {
                        continue;
                    }
                    date = self.today + Duration::days(day);
                }
                let (status, reason, prescription_status) = self.outcome(day, false);
                let prescription = self.prescription(lab, patient, date, prescription_status, false);
                let fasting = self.data.prescriptions.last().is_some_and(|p| p.fasting);
                let time = self.lab_time(date.weekday(), fasting);
                let assigned = (!lab.nurses.is_empty() && self.rng.chance(0.4)).then(|| self.rng.choose(&lab.nurses));
                let id = self.rng.uuid();
                self.data.appointments.push(AppointmentRow {
                    id,
                    lab_id: lab.id,
                    patient_id: self.data.patients[patient].id,
                    prescription_id: Some(prescription),
                    kind: "lab",
                    scheduled_at: clock::paris(date, time),
                    duration_min: 10,
                    address_line: None,
                    postal_code: None,
                    city: None,
                    access_notes: None,
                    assigned_staff_id: assigned,
                    round_position: None,
                    status,
                    status_reason: reason,
                });
            }
        }
    }

    /// A slot in opening hours: 07:00–12:00 and 14:00–18:00 on weekdays, 07:30–12:00 on Saturdays;
    /// fasting patients come first thing in the morning.
    fn lab_time(&mut self, weekday: Weekday, fasting: bool) -> Time {
        let (start, end) = if fasting {
            (7 * 60, 9 * 60 + 30)
        } else if weekday == Weekday::Saturday {
            (7 * 60 + 30, 12 * 60)
        } else if self.rng.chance(0.7) {
            (7 * 60, 12 * 60)
        } else {
            (14 * 60, 18 * 60)
        };
        let slot = self.rng.range(0, (end - start) / 5 - 1);
        let minutes = start + slot * 5;
        Time::from_hms(
            u8::try_from(minutes / 60).unwrap_or(7),
            u8::try_from(minutes % 60).unwrap_or(0),
            0,
        )
        .unwrap_or(Time::MIDNIGHT)
    }

    /// Home rounds: every home sampler, every day from a week ago to the last day, 8–15 visits from 07:00.
    fn home_rounds(&mut self, args: &SeedArgs, lab: &Lab) {
        if lab.samplers.is_empty() {
            return;
        }
        let with_address: Vec<usize> = lab
            .patients
            .iter()
            .copied()
            .filter(|&p| self.data.patients[p].address_line.is_some())
            .collect();
        // Home sampling is for people who cannot come: mostly the elderly. When a small data set has too
        // few of them, younger patients fill in so that a patient is not visited every day.
        let mut pool: Vec<usize> = with_address
            .iter()
            .copied()
            .filter(|&p| age_on(self.data.patients[p].birth_date, self.today) >= 70)
            .collect();
        let needed_per_day = lab.samplers.len() * 15 * 2;
        if pool.len() < needed_per_day {
            let mut others: Vec<usize> = with_address.iter().copied().filter(|p| !pool.contains(p)).collect();
            self.rng.shuffle(&mut others);
            pool.extend(others.into_iter().take(needed_per_day - pool.len()));
        }
        if pool.is_empty() {
            return;
        }
        let nursing_homes: Vec<(String, &'static Commune)> = (0..2)
            .map(|_| {
                let commune = lab_commune(&mut self.rng, lab.site);
                let name = self.rng.choose(names::NURSING_HOMES);
                (
                    format!("{name}, {}", street_address(&mut self.rng, commune, false)),
                    commune,
                )
            })
            .collect();
        let first_day = -i64::from(args.days_back.min(PAST_ROUND_DAYS));
        for day in first_day..=i64::from(args.days_ahead) {
            let date = self.today + Duration::days(day);
            // A patient gets at most one visit a day, whichever sampler comes.
            self.rng.shuffle(&mut pool);
            let mut next = 0;
            for &sampler in &lab.samplers {
                let size = usize::try_from(self.rng.range(8, 15))
                    .unwrap_or(8)
                    .min(pool.len() - next);
                let mut minutes = 7 * 60;
                for position in 1..=size {
                    let patient = pool[next];
                    next += 1;
                    self.home_visit(lab, patient, sampler, date, day, minutes, position, &nursing_homes);
                    minutes += self.rng.range(15, 25);
                }
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one visit's every field, named at the call site"
    )]
    fn home_visit(
        &mut self,
        lab: &Lab,
        patient: usize,
        sampler: Uuid,
        date: Date,
        day: i64,
        minutes: i64,
        position: usize,
        nursing_homes: &[(String, &'static Commune)],
    ) {
        let (status, reason, prescription_status) = self.outcome(day, true);
        let prescription = self.prescription(lab, patient, date, prescription_status, true);
        let row = &self.data.patients[patient];
        let rng = &mut self.rng;
        let (address_line, postal_code, city, access_notes) = match rng.below(100) {
            0..12 => {
                let (address, commune) = rng.pick(nursing_homes);
                let note = format!("Se présenter à l'accueil, chambre {}", rng.range(101, 340));
                (address.clone(), commune.postal_code, commune.city, Some(note))
            }
            12..20 => {
                let commune = lab_commune(rng, lab.site);
                let relative = rng.pick(&["sa fille", "son fils", "sa sœur", "sa nièce"]);
                let address = format!("Chez {relative}, {}", street_address(rng, commune, true));
                (
                    address,
                    commune.postal_code,
                    commune.city,
                    Some(access_note(
                        rng,
                        row.used_family_name.as_deref().unwrap_or(&row.birth_family_name),
                    )),
                )
            }
            _ => {
                let note = rng
                    .chance(0.7)
                    .then(|| access_note(rng, row.used_family_name.as_deref().unwrap_or(&row.birth_family_name)));
                (
                    row.address_line.clone().unwrap_or_default(),
                    row.postal_code.unwrap_or_default(),
                    row.city.unwrap_or_default(),
                    note,
                )
            }
        };
        let time = Time::from_hms(
            u8::try_from(minutes / 60).unwrap_or(7),
            u8::try_from(minutes % 60).unwrap_or(0),
            0,
        )
        .unwrap_or(Time::MIDNIGHT);
        let id = rng.uuid();
        self.data.appointments.push(AppointmentRow {
            id,
            lab_id: lab.id,
            patient_id: row.id,
            prescription_id: Some(prescription),
            kind: "home",
            scheduled_at: clock::paris(date, time),
            duration_min: 15,
            address_line: Some(address_line),
            postal_code: Some(postal_code),
            city: Some(city),
            access_notes,
            assigned_staff_id: Some(sampler),
            round_position: i16::try_from(position).ok(),
            status,
            status_reason: reason,
        });
    }
}

/// What the home sampler needs to know at the door.
fn access_note(rng: &mut Rng, family_name: &str) -> String {
    let floor = rng.range(1, 9);
    match rng.below(8) {
        0 => format!(
            "Digicode {}{}, {floor}e étage",
            rng.range(1000, 9999),
            rng.pick(&["A", "B", "#", ""])
        ),
        1 => format!("Interphone au nom de {}", family_name.to_uppercase()),
        2 => format!("Boîte à clés à droite de la porte, code {}", rng.range(1000, 9999)),
        3 => "Sonner longtemps : patient malentendant".to_owned(),
        4 => format!("Digicode {}, porte de gauche au fond de la cour", rng.range(1000, 9999)),
        5 => "Chien dans le jardin : appeler en arrivant".to_owned(),
        6 => format!("Ascenseur souvent en panne, {floor}e étage sans ascenseur"),
        _ => "Appeler l'aidante en arrivant, elle ouvre la porte".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use time::Month;

    use super::*;

    fn args() -> SeedArgs {
        SeedArgs {
            patients: 600,
            ..SeedArgs::default()
        }
    }

    #[test]
    fn add_ons_are_in_the_catalog() {
        for code in ADD_ONS {
            assert!(catalog::exam(code).is_some(), "{code}");
        }
    }

    #[test]
    fn slugs_are_valid_logins() {
        assert_eq!(login_slug("Lefèvre"), "lefevre");
        assert_eq!(login_slug("D'Almeida"), "dalmeida");
        assert_eq!(login_slug("Le Goff"), "le-goff");
        assert_eq!(login_slug("Şahin"), "sahin");
        assert_eq!(login_slug("N'Diaye"), "ndiaye");
    }

    #[test]
    fn rpps_has_eleven_digits_and_a_luhn_key() {
        let mut rng = Rng::for_stream(1, "rpps");
        for _ in 0..100 {
            let number = rpps(&mut rng);
            assert_eq!(number.len(), 11);
            let sum: u32 = number
                .chars()
                .rev()
                .enumerate()
                .map(|(i, c)| {
                    let d = c.to_digit(10).unwrap_or(0);
                    if i % 2 == 1 {
                        if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                    } else {
                        d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{number}");
        }
    }

    #[test]
    fn generated_data_keeps_the_schema_rules() {
        let today = Date::from_calendar_date(2026, Month::November, 28).unwrap_or(Date::MIN);
        let data = generate(&args(), today);
        assert_eq!(data.patients.len(), 600);
        for patient in &data.patients {
            if let Some(nir) = &patient.nir {
                let parsed = Nir::parse(nir).map_err(|e| e.to_string());
                assert!(parsed.is_ok(), "{parsed:?}");
                assert_eq!(&nir[5..10], patient.birth_place_code.unwrap_or_default());
                assert_eq!(nir[3..5].parse::<u8>().ok(), Some(u8::from(patient.birth_date.month())));
            }
        }
        for staff in &data.staff {
            let ok = (3..=32).contains(&staff.login.len())
                && staff
                    .login
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            assert!(ok, "{}", staff.login);
        }
        for appointment in &data.appointments {
            assert!(appointment.kind == "lab" || appointment.address_line.is_some());
        }
        let again = generate(&args(), today);
        assert_eq!(again.appointments.len(), data.appointments.len());
        assert_eq!(
            again.patients[17].birth_given_names,
            data.patients[17].birth_given_names
        );
    }
}
