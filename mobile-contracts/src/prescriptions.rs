//! Prescriptions, their exams and the tube plan: which tubes to draw, how many, in which order.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use crate::common::PrescriptionStatus;
use crate::personal::redact_option;

/// The prescribing doctor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prescriber {
    /// Name as printed on the prescription.
    pub name: String,
    /// RPPS number (11 digits), the national identifier of health professionals.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{11}$", examples("10003456789")))]
    pub rpps: String,
}

/// A prescription in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrescriptionSummary {
    /// Prescription id.
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// The prescribing doctor.
    pub prescriber: Prescriber,
    /// Date written on the prescription (`YYYY-MM-DD`).
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub issued_on: Date,
    /// Status.
    pub status: PrescriptionStatus,
    /// Whether at least one exam needs the patient to be fasting.
    pub fasting_required: bool,
    /// Number of prescribed exams.
    pub exam_count: u32,
    /// Row version.
    pub version: i64,
}

/// `GET /v1/patients/{id}/prescriptions`: the patient's prescriptions, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrescriptionList {
    /// The prescriptions.
    pub items: Vec<PrescriptionSummary>,
}

/// One exam of a prescription, from the lab's exam catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrescribedExam {
    /// Catalog code, e.g. `NFS`.
    pub code: String,
    /// Label, e.g. "Numération formule sanguine".
    pub label: String,
    /// Code of the tube type the exam needs, e.g. `EDTA`.
    pub tube_type: String,
    /// Blood volume the exam needs, in microlitres.
    pub volume_ul: u32,
    /// Whether the patient must be fasting.
    pub fasting: bool,
}

/// One line of a tube plan: a tube type and how many tubes of it to draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TubePlanEntry {
    /// Tube type code.
    pub tube_type: String,
    /// Tube label, e.g. "EDTA 4 mL".
    pub label: String,
    /// Cap colour, e.g. `lavender`.
    pub cap_color: String,
    /// Additive, e.g. "K2-EDTA".
    pub additive: Option<String>,
    /// Position in the order of draw (lower first), to avoid additive carry-over.
    pub draw_order: u16,
    /// How many tubes to draw (at least 1).
    pub tube_count: u16,
    /// Total volume the exams need, in microlitres.
    pub total_volume_ul: u32,
    /// Whether one of the exams of this tube needs fasting.
    pub fasting: bool,
    /// Codes of the exams drawn into these tubes, in prescription order.
    pub exam_codes: Vec<String>,
}

/// A prescription with its exams and the tubes to draw.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prescription {
    /// Prescription id.
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// The prescribing doctor.
    pub prescriber: Prescriber,
    /// Date written on the prescription (`YYYY-MM-DD`).
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub issued_on: Date,
    /// Status.
    pub status: PrescriptionStatus,
    /// Whether at least one exam needs the patient to be fasting.
    pub fasting_required: bool,
    /// Free notes from the prescriber or the lab (may hold health details).
    pub notes: Option<String>,
    /// The exams.
    pub exams: Vec<PrescribedExam>,
    /// Tubes to draw, in order of draw: the exams grouped by tube type.
    pub tube_plan: Vec<TubePlanEntry>,
    /// Row version.
    pub version: i64,
}

impl fmt::Debug for Prescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prescription")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("prescriber", &self.prescriber)
            .field("issued_on", &self.issued_on)
            .field("status", &self.status)
            .field("fasting_required", &self.fasting_required)
            .field("notes", &redact_option(&self.notes))
            .field("exams", &self.exams)
            .field("tube_plan", &self.tube_plan)
            .field("version", &self.version)
            .finish()
    }
}

/// An exam joined with its tube type from the catalog: the input of [`tube_plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExamWithTube {
    /// The exam (its `tube_type` is the grouping key).
    pub exam: PrescribedExam,
    /// Label of the tube type, e.g. "EDTA 4 mL".
    pub label: String,
    /// Cap colour.
    pub cap_color: String,
    /// Additive.
    pub additive: Option<String>,
    /// Usable volume of one tube, in microlitres.
    pub capacity_ul: u32,
    /// Position in the order of draw.
    pub draw_order: u16,
}

/// Groups exams by tube type and says how many tubes of each to draw, in order of draw.
///
/// Volumes of a tube type add up; the count is `ceil(total / capacity)`, at least 1 (an exam with no
/// stated volume still needs its tube). Tube metadata comes from the first exam of each type, since
/// the catalog gives every exam of a type the same tube. Ties in draw order are broken by tube type
/// code so the plan is stable. An exam listed twice is drawn once.
pub fn tube_plan(exams: &[ExamWithTube]) -> Vec<TubePlanEntry> {
    struct Group<'a> {
        first: &'a ExamWithTube,
        total_volume_ul: u32,
        fasting: bool,
        exam_codes: Vec<String>,
    }

    let mut groups: BTreeMap<&str, Group<'_>> = BTreeMap::new();
    for item in exams {
        let group = groups.entry(item.exam.tube_type.as_str()).or_insert_with(|| Group {
            first: item,
            total_volume_ul: 0,
            fasting: false,
            exam_codes: Vec::new(),
        });
        if group.exam_codes.contains(&item.exam.code) {
            continue;
        }
        group.total_volume_ul = group.total_volume_ul.saturating_add(item.exam.volume_ul);
        group.fasting |= item.exam.fasting;
        group.exam_codes.push(item.exam.code.clone());
    }

    let mut plan: Vec<TubePlanEntry> = groups
        .into_iter()
        .map(|(tube_type, group)| {
            // A catalog entry without a capacity is a data error: plan one tube rather than divide
            // by zero, the sampler will see the volume and adapt.
            let tubes = match group.first.capacity_ul {
                0 => 1,
                capacity => group.total_volume_ul.div_ceil(capacity).max(1),
            };
            TubePlanEntry {
                tube_type: tube_type.to_owned(),
                label: group.first.label.clone(),
                cap_color: group.first.cap_color.clone(),
                additive: group.first.additive.clone(),
                draw_order: group.first.draw_order,
                tube_count: u16::try_from(tubes).unwrap_or(u16::MAX),
                total_volume_ul: group.total_volume_ul,
                fasting: group.fasting,
                exam_codes: group.exam_codes,
            }
        })
        .collect();
    plan.sort_by(|a, b| (a.draw_order, &a.tube_type).cmp(&(b.draw_order, &b.tube_type)));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exam(code: &str, tube: &str, volume_ul: u32, fasting: bool, capacity_ul: u32, draw_order: u16) -> ExamWithTube {
        ExamWithTube {
            exam: PrescribedExam {
                code: code.into(),
                label: format!("{code} label"),
                tube_type: tube.into(),
                volume_ul,
                fasting,
            },
            label: format!("{tube} tube"),
            cap_color: format!("{tube} cap"),
            additive: (tube != "DRY").then(|| format!("{tube} additive")),
            capacity_ul,
            draw_order,
        }
    }

    #[test]
    fn groups_sums_counts_and_orders() {
        let plan = tube_plan(&[
            exam("NFS", "EDTA", 1_000, false, 4_000, 3),
            exam("GLY", "FLUO", 500, true, 2_000, 4),
            exam("HBA1C", "EDTA", 2_000, false, 4_000, 3),
            exam("BIOCH", "SST", 3_000, false, 3_500, 2),
            exam("IONO", "SST", 1_000, true, 3_500, 2),
            exam("TP", "CIT", 2_700, false, 2_700, 1),
        ]);
        let summary: Vec<_> = plan
            .iter()
            .map(|e| (e.tube_type.as_str(), e.tube_count, e.total_volume_ul, e.fasting))
            .collect();
        assert_eq!(
            summary,
            [
                ("CIT", 1, 2_700, false),
                ("SST", 2, 4_000, true),
                ("EDTA", 1, 3_000, false),
                ("FLUO", 1, 500, true),
            ]
        );
        assert_eq!(plan[1].exam_codes, ["BIOCH", "IONO"]);
        assert_eq!(plan[2].label, "EDTA tube");
        assert_eq!(plan[2].additive.as_deref(), Some("EDTA additive"));
    }

    #[test]
    fn at_least_one_tube_and_no_division_by_zero() {
        let plan = tube_plan(&[exam("X", "DRY", 0, false, 0, 1), exam("Y", "EDTA", 9_000, false, 0, 2)]);
        assert_eq!(plan[0].tube_count, 1);
        assert_eq!(plan[0].additive, None);
        assert_eq!(plan[1].tube_count, 1);
    }

    #[test]
    fn ties_in_draw_order_sort_by_tube_type_and_duplicates_count_once() {
        let plan = tube_plan(&[
            exam("A", "ZZZ", 100, false, 1_000, 1),
            exam("B", "AAA", 100, false, 1_000, 1),
            exam("B", "AAA", 100, false, 1_000, 1),
        ]);
        assert_eq!(plan[0].tube_type, "AAA");
        assert_eq!(plan[0].total_volume_ul, 100);
        assert_eq!(plan[0].exam_codes, ["B"]);
        assert!(tube_plan(&[]).is_empty());
    }

    #[test]
    fn exact_multiples_do_not_round_up() {
        let plan = tube_plan(&[
            exam("A", "EDTA", 4_000, false, 4_000, 1),
            exam("B", "EDTA", 4_001, false, 4_000, 1),
        ]);
        assert_eq!(plan[0].tube_count, 3);
        let plan = tube_plan(&[exam("A", "EDTA", 8_000, false, 4_000, 1)]);
        assert_eq!(plan[0].tube_count, 2);
    }
}
