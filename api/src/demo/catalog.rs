//! The reference catalog a French medical lab works with: tube types in the order of draw and the
//! usual exams of a town lab, with the panels prescribers actually ask for together.

use diesel::Insertable;
use labedge_schema::cloud::schema::{exam_catalog, tube_types};

/// A tube type as the tablets show it, and its row of `tube_types`.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = tube_types)]
pub struct TubeType {
    /// Code (`^[A-Z0-9_]{2,24}$`).
    pub code: &'static str,
    /// French label.
    pub label: &'static str,
    /// Cap colour, in French as printed on the tablet.
    pub cap_color: &'static str,
    /// What the tube contains, if anything.
    pub additive: Option<&'static str>,
    /// Nominal fill volume in µL.
    pub capacity_ul: i32,
    /// Rank in the order of draw (CLSI GP41): a wrong order contaminates the next tubes with additive.
    pub draw_order: i16,
}

/// Tube types in the CLSI GP41 order of draw (blood cultures are not drawn at a town lab's tablets).
pub const TUBE_TYPES: &[TubeType] = &[
    TubeType {
        code: "CITRATE",
        label: "Tube citraté 3,2 % (hémostase)",
        cap_color: "bleu clair",
        additive: Some("citrate trisodique 0,109 M"),
        capacity_ul: 2_700,
        draw_order: 1,
    },
    TubeType {
        code: "SERUM",
        label: "Tube sec sans gel",
        cap_color: "rouge",
        additive: Some("activateur de coagulation"),
        capacity_ul: 5_000,
        draw_order: 2,
    },
    TubeType {
        code: "SST",
        label: "Tube sec avec gel séparateur",
        cap_color: "jaune or",
        additive: Some("activateur de coagulation et gel séparateur"),
        capacity_ul: 5_000,
        draw_order: 3,
    },
    TubeType {
        code: "HEPARIN",
        label: "Tube hépariné (héparinate de lithium)",
        cap_color: "vert",
        additive: Some("héparinate de lithium"),
        capacity_ul: 4_000,
        draw_order: 4,
    },
    TubeType {
        code: "EDTA",
        label: "Tube EDTA K2",
        cap_color: "violet",
        additive: Some("EDTA dipotassique"),
        capacity_ul: 4_000,
        draw_order: 5,
    },
    TubeType {
        code: "FLUORIDE",
        label: "Tube fluoré (fluorure de sodium / oxalate de potassium)",
        cap_color: "gris",
        additive: Some("fluorure de sodium et oxalate de potassium"),
        capacity_ul: 2_000,
        draw_order: 6,
    },
    TubeType {
        code: "URINE",
        label: "Flacon stérile pour urines",
        cap_color: "blanc",
        additive: None,
        capacity_ul: 60_000,
        draw_order: 7,
    },
];

/// An exam of the catalog, and its row of `exam_catalog`.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = exam_catalog)]
pub struct Exam {
    /// Code (`^[A-Z0-9_]{2,24}$`).
    pub code: &'static str,
    /// French label.
    pub label: &'static str,
    /// Code of its tube type.
    pub tube_type: &'static str,
    /// Specimen volume it needs, in µL.
    pub volume_ul: i32,
    /// Whether the patient must have fasted (8–12 h).
    pub fasting: bool,
}

const fn entry(
    code: &'static str,
    label: &'static str,
    tube_type: &'static str,
    volume_ul: i32,
    fasting: bool,
) -> Exam {
    Exam {
        code,
        label,
        tube_type,
        volume_ul,
        fasting,
    }
}

/// The exams of a town lab's everyday activity.
pub const EXAMS: &[Exam] = &[
    // Hemostasis: a citrate tube must be filled to the line, so each test takes a share of it.
    entry("TP_INR", "Taux de prothrombine (TP) et INR", "CITRATE", 900, false),
    entry("TCA", "Temps de céphaline avec activateur (TCA)", "CITRATE", 900, false),
    entry("FIBRINOGENE", "Fibrinogène", "CITRATE", 900, false),
    entry("DDIMERES", "D-dimères", "CITRATE", 900, false),
    // Serum chemistry, immunology and serology.
    entry("EAL", "Exploration d'une anomalie lipidique (EAL)", "SST", 500, true),
    entry("TSH", "TSH ultrasensible", "SST", 300, false),
    entry("T4L", "Thyroxine libre (T4L)", "SST", 300, false),
    entry("T3L", "Triiodothyronine libre (T3L)", "SST", 300, false),
    entry("FERRITINE", "Ferritine", "SST", 300, false),
    entry(
        "FER_CST",
        "Fer sérique et coefficient de saturation de la transferrine",
        "SST",
        400,
        true,
    ),
    entry("VITD", "Vitamine D (25-OH D2 + D3)", "SST", 500, false),
    entry("VITB12", "Vitamine B12", "SST", 300, false),
    entry("FOLATES", "Folates sériques", "SST", 300, false),
    entry("PSA", "Antigène prostatique spécifique (PSA total)", "SST", 500, false),
    entry("BHCG", "β-hCG plasmatique (dosage quantitatif)", "SST", 500, false),
    entry(
        "SERO_VIH",
        "Sérologie VIH 1 et 2 (Ag p24 et anticorps)",
        "SST",
        500,
        false,
    ),
    entry(
        "SERO_VHB",
        "Sérologie hépatite B (Ag HBs, Ac anti-HBs, Ac anti-HBc)",
        "SST",
        800,
        false,
    ),
    entry("SERO_VHC", "Sérologie hépatite C (Ac anti-VHC)", "SST", 500, false),
    entry("SERO_TOXO", "Sérologie toxoplasmose (IgG, IgM)", "SST", 500, false),
    entry("SERO_RUBEOLE", "Sérologie rubéole (IgG)", "SST", 500, false),
    entry("SERO_SYPHILIS", "Sérologie syphilis (TPHA-VDRL)", "SST", 500, false),
    // Plasma chemistry on lithium heparin.
    entry(
        "IONO",
        "Ionogramme sanguin (Na, K, Cl, CO2 total)",
        "HEPARIN",
        400,
        false,
    ),
    entry("CREAT", "Créatinine et DFG estimé (CKD-EPI)", "HEPARIN", 300, false),
    entry("UREE", "Urée", "HEPARIN", 200, false),
    entry("CRP", "Protéine C réactive (CRP)", "HEPARIN", 200, false),
    entry("ASAT", "Aspartate aminotransférase (ASAT)", "HEPARIN", 200, false),
    entry("ALAT", "Alanine aminotransférase (ALAT)", "HEPARIN", 200, false),
    entry("GGT", "Gamma-glutamyl transférase (GGT)", "HEPARIN", 200, false),
    entry("PAL", "Phosphatases alcalines (PAL)", "HEPARIN", 200, false),
    entry("BILI", "Bilirubine totale et conjuguée", "HEPARIN", 300, false),
    entry("ACIDE_URIQUE", "Acide urique", "HEPARIN", 200, false),
    entry("CALCIUM", "Calcémie", "HEPARIN", 200, false),
    entry("MAGNESIUM", "Magnésémie", "HEPARIN", 200, false),
    entry("ALBUMINE", "Albumine", "HEPARIN", 200, false),
    entry("CPK", "Créatine phosphokinase (CPK)", "HEPARIN", 200, false),
    entry("NT_PROBNP", "NT-proBNP", "HEPARIN", 400, false),
    // Hematology and immunohematology on EDTA.
    entry("NFS", "Numération formule sanguine (NFS)", "EDTA", 1_000, false),
    entry("PLAQUETTES", "Numération des plaquettes", "EDTA", 500, false),
    entry("RETICULOCYTES", "Numération des réticulocytes", "EDTA", 500, false),
    entry("HBA1C", "Hémoglobine glyquée (HbA1c)", "EDTA", 500, false),
    entry(
        "GROUPE_ABO_RHD",
        "Groupage sanguin ABO-RhD et phénotype RH-KEL1",
        "EDTA",
        1_000,
        false,
    ),
    entry(
        "RAI",
        "Recherche d'agglutinines irrégulières (RAI)",
        "EDTA",
        1_000,
        false,
    ),
    // Glucose needs fluoride: glycolysis in a plain tube lowers it by 5–7 % an hour.
    entry("GLYCEMIE", "Glycémie à jeun", "FLUORIDE", 500, true),
    // Urine.
    entry(
        "ECBU",
        "Examen cytobactériologique des urines (ECBU)",
        "URINE",
        20_000,
        false,
    ),
    entry(
        "MICROALB",
        "Microalbuminurie (rapport albumine/créatinine urinaire)",
        "URINE",
        10_000,
        false,
    ),
    entry(
        "PROTEINURIE",
        "Protéinurie sur échantillon (rapport protéines/créatinine)",
        "URINE",
        10_000,
        false,
    ),
];

/// Who a panel is prescribed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone.
    Anyone,
    /// Adults.
    Adult,
    /// Men of 45 and over (prostate screening).
    OlderMen,
    /// Women of child-bearing age.
    Pregnancy,
    /// Patients of 65 and over (anticoagulants, heart failure, kidneys).
    Elderly,
}

/// Exams that are prescribed together, with how common the panel is.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// What the prescriber is looking at, as written in the clinical information of a prescription.
    pub name: &'static str,
    /// Who it is for.
    pub audience: Audience,
    /// Relative frequency.
    pub weight: u32,
    /// Exams, most essential first: a prescription takes a prefix-biased subset.
    pub exams: &'static [&'static str],
}

/// The panels of everyday prescriptions.
pub const PANELS: &[Panel] = &[
    Panel {
        name: "bilan de santé",
        audience: Audience::Adult,
        weight: 30,
        exams: &["NFS", "GLYCEMIE", "EAL", "CREAT", "ASAT", "ALAT", "GGT", "TSH"],
    },
    Panel {
        name: "suivi diabète",
        audience: Audience::Adult,
        weight: 14,
        exams: &["HBA1C", "GLYCEMIE", "CREAT", "MICROALB", "EAL", "IONO"],
    },
    Panel {
        name: "suivi AVK",
        audience: Audience::Elderly,
        weight: 14,
        exams: &["TP_INR"],
    },
    Panel {
        name: "insuffisance cardiaque et rénale",
        audience: Audience::Elderly,
        weight: 8,
        exams: &["IONO", "CREAT", "UREE", "NT_PROBNP", "NFS", "ALBUMINE"],
    },
    Panel {
        name: "thyroïde",
        audience: Audience::Anyone,
        weight: 8,
        exams: &["TSH", "T4L", "T3L"],
    },
    Panel {
        name: "anémie et carences",
        audience: Audience::Anyone,
        weight: 8,
        exams: &[
            "NFS",
            "FERRITINE",
            "VITB12",
            "FOLATES",
            "RETICULOCYTES",
            "FER_CST",
            "VITD",
        ],
    },
    Panel {
        name: "syndrome inflammatoire ou infection",
        audience: Audience::Anyone,
        weight: 8,
        exams: &["CRP", "NFS", "ECBU", "CREAT"],
    },
    Panel {
        name: "bilan hépatique",
        audience: Audience::Adult,
        weight: 6,
        exams: &["ASAT", "ALAT", "GGT", "PAL", "BILI", "TP_INR", "ALBUMINE"],
    },
    Panel {
        name: "dépistage prostate",
        audience: Audience::OlderMen,
        weight: 5,
        exams: &["PSA", "CREAT"],
    },
    Panel {
        name: "grossesse",
        audience: Audience::Pregnancy,
        weight: 5,
        exams: &["BHCG", "SERO_TOXO", "SERO_RUBEOLE", "GROUPE_ABO_RHD", "RAI", "NFS"],
    },
    Panel {
        name: "dépistage IST",
        audience: Audience::Adult,
        weight: 4,
        exams: &["SERO_VIH", "SERO_VHB", "SERO_VHC", "SERO_SYPHILIS"],
    },
    Panel {
        name: "bilan préopératoire",
        audience: Audience::Anyone,
        weight: 4,
        exams: &["NFS", "PLAQUETTES", "TP_INR", "TCA", "GROUPE_ABO_RHD", "RAI"],
    },
    Panel {
        name: "goutte et métabolisme",
        audience: Audience::Adult,
        weight: 3,
        exams: &["ACIDE_URIQUE", "CREAT", "CALCIUM", "MAGNESIUM", "CPK"],
    },
    Panel {
        name: "thrombose",
        audience: Audience::Adult,
        weight: 2,
        exams: &["DDIMERES", "FIBRINOGENE", "NFS", "TCA"],
    },
    Panel {
        name: "néphropathie",
        audience: Audience::Adult,
        weight: 2,
        exams: &["PROTEINURIE", "MICROALB", "CREAT", "UREE", "IONO"],
    },
];

/// The catalog entry of an exam code.
pub fn exam(code: &str) -> Option<&'static Exam> {
    EXAMS.iter().find(|exam| exam.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_is_valid(code: &str) -> bool {
        (2..=24).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn codes_follow_the_schema_and_references_resolve() {
        assert!(EXAMS.len() >= 30);
        for tube in TUBE_TYPES {
            assert!(code_is_valid(tube.code), "{}", tube.code);
        }
        for exam in EXAMS {
            assert!(code_is_valid(exam.code), "{}", exam.code);
            assert!(
                TUBE_TYPES.iter().any(|tube| tube.code == exam.tube_type),
                "{}",
                exam.code
            );
            assert_eq!(
                EXAMS.iter().filter(|other| other.code == exam.code).count(),
                1,
                "{}",
                exam.code
            );
        }
        for panel in PANELS {
            for code in panel.exams {
                assert!(super::exam(code).is_some(), "{} in {}", code, panel.name);
            }
        }
    }
}
