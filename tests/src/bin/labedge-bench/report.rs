//! The report: every run's figures, their median/min/max, the ratios, each target met or missed by
//! how much, rendered as JSON (`report.json`) and Markdown (`report.md`).

use std::fmt::Write as _;

use serde::Serialize;

/// Median, min and max of a figure over the runs.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Stat {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Number of runs.
    pub runs: usize,
}

impl Stat {
    /// Of `values` (NaN ignored); `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }
}

/// Which way a target goes.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// The figure must be at least the threshold.
    AtLeast,
    /// The figure must be below the threshold.
    Below,
}

/// One target of the issue, checked against a median.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// Which benchmark.
    pub benchmark: String,
    /// What is measured, in words.
    pub what: String,
    /// The direction.
    pub goal: Goal,
    /// The threshold.
    pub threshold: f64,
    /// The measured median (None when the benchmark did not run).
    pub measured: Option<f64>,
    /// Its unit.
    pub unit: String,
    /// Met, missed, or not checked (smoke mode, or no figure).
    pub verdict: String,
    /// By how much it is met or missed, in words.
    pub margin: String,
    /// Why a missed target is missed (from the profile and the other figures), when known.
    pub why: Option<String>,
}

/// One measured line of a benchmark's table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What was measured (server and setting).
    pub label: String,
    /// Figure name → its statistics over the runs.
    pub figures: Vec<(String, Stat)>,
}

/// One benchmark's section.
#[derive(Clone, Debug, Serialize)]
pub struct Section {
    /// Short id (`read`, `write`, …).
    pub id: String,
    /// Title.
    pub title: String,
    /// How it was run.
    pub method: String,
    /// Median/min/max per measured line.
    pub rows: Vec<Row>,
    /// Ratios (name, value of the medians).
    pub ratios: Vec<(String, f64)>,
    /// Every run's raw figures.
    pub runs: Vec<serde_json::Value>,
    /// Checks (durability, exactly once…) and remarks.
    pub notes: Vec<String>,
    /// The error that stopped it, if any.
    pub error: Option<String>,
}

impl Section {
    /// An empty section.
    pub fn new(id: &str, title: &str, method: String) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            method,
            rows: Vec::new(),
            ratios: Vec::new(),
            runs: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// Adds a row from named value lists.
    pub fn row(&mut self, label: &str, figures: &[(&str, Vec<f64>)]) {
        let figures = figures
            .iter()
            .filter_map(|(name, values)| Stat::of(values).map(|s| ((*name).to_owned(), s)))
            .collect();
        self.rows.push(Row {
            label: label.into(),
            figures,
        });
    }

    /// The median of figure `figure` of row `label`.
    pub fn median(&self, label: &str, figure: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.label == label)?
            .figures
            .iter()
            .find(|(n, _)| n == figure)
            .map(|(_, s)| s.median)
    }
}

/// The machine the run happened on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `nproc`.
    pub cpus: usize,
    /// /proc/cpuinfo's model name.
    pub cpu_model: String,
    /// MemTotal, GiB.
    pub ram_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// Load average when the run started.
    pub load_at_start: String,
    /// Versions of the servers and tools.
    pub software: Vec<(String, String)>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `full` or `smoke`.
    pub mode: String,
    /// The command that produced it.
    pub command: String,
    /// UTC start, RFC 3339.
    pub started_at: String,
    /// Wall time of the whole run, s.
    pub duration_s: f64,
    /// The machine.
    pub machine: Machine,
    /// Sizes and settings.
    pub settings: Vec<(String, String)>,
    /// The targets, checked.
    pub targets: Vec<Target>,
    /// The benchmarks.
    pub sections: Vec<Section>,
}

/// Checks a target against a median (or not, in smoke mode).
pub fn target(
    benchmark: &str,
    what: &str,
    goal: Goal,
    threshold: f64,
    measured: Option<f64>,
    unit: &str,
    check: bool,
) -> Target {
    let (verdict, margin) = match (measured, check) {
        (None, _) => ("no figure".to_owned(), "the benchmark did not produce it".to_owned()),
        (Some(m), false) => ("not checked (smoke)".to_owned(), format!("measured {}", fmt(m, unit))),
        (Some(m), true) => {
            let met = match goal {
                Goal::AtLeast => m >= threshold,
                Goal::Below => m < threshold,
            };
            let relative = if threshold != 0.0 {
                (m - threshold).abs() / threshold * 100.0
            } else {
                0.0
            };
            let how = match (goal, met) {
                (Goal::AtLeast, true) => format!("{relative:.0} % above the floor"),
                (Goal::AtLeast, false) => format!("missed: {relative:.0} % short of {}", fmt(threshold, unit)),
                (Goal::Below, true) => format!("{relative:.0} % under the ceiling"),
                (Goal::Below, false) => format!("missed: {relative:.0} % over {}", fmt(threshold, unit)),
            };
            ((if met { "met" } else { "MISSED" }).to_owned(), how)
        }
    };
    Target {
        benchmark: benchmark.into(),
        what: what.into(),
        goal,
        threshold,
        measured,
        unit: unit.into(),
        verdict,
        margin,
        why: None,
    }
}

/// A figure the issue asks for without a threshold (a ratio to a peer): reported, never checked.
pub fn info(benchmark: &str, what: &str, measured: Option<f64>, unit: &str) -> Target {
    let mut t = target(benchmark, what, Goal::AtLeast, 0.0, measured, unit, false);
    t.verdict = "reported (no target)".into();
    t
}

/// A figure with its unit, rounded for reading.
pub fn fmt(value: f64, unit: &str) -> String {
    let number = if value.abs() >= 100.0 {
        group(value.round() as i64)
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    match unit {
        "" => number,
        "%" | "×" => format!("{number}{unit}"),
        _ => format!("{number} {unit}"),
    }
}

fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

impl Report {
    /// The Markdown rendering.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# LabEdge benchmark report ({})\n", self.mode);
        let _ = writeln!(
            md,
            "Started {} · {:.0} s · command `{}`\n",
            self.started_at, self.duration_s, self.command
        );
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {} × {} · {:.1} GiB RAM · Linux {} · load at start {}  ",
            m.cpus, m.cpu_model, m.ram_gib, m.kernel, m.load_at_start
        );
        let software: Vec<String> = m.software.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(md, "Software: {}\n", software.join(" · "));
        let settings: Vec<String> = self.settings.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(md, "Settings: {}\n", settings.join(" · "));

        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(
            md,
            "Medians over the runs. What limits each figure, from a profile of the gateway under the same loads: \
             docs/performance.md.\n"
        );
        let _ = writeln!(md, "| benchmark | target | measured (median) | verdict | margin |");
        let _ = writeln!(md, "|---|---|---|---|---|");
        for t in &self.targets {
            let target = if t.verdict.starts_with("reported") {
                t.what.clone()
            } else {
                format!(
                    "{} {} {}",
                    t.what,
                    if t.goal == Goal::AtLeast { "≥" } else { "<" },
                    fmt(t.threshold, &t.unit)
                )
            };
            let measured = t.measured.map_or("—".to_owned(), |v| fmt(v, &t.unit));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {}{} |",
                t.benchmark,
                target,
                measured,
                t.verdict,
                t.margin,
                t.why.as_deref().map(|w| format!(" — {w}")).unwrap_or_default()
            );
        }
        for s in &self.sections {
            let _ = writeln!(md, "\n## {}\n", s.title);
            let _ = writeln!(md, "{}\n", s.method);
            if let Some(error) = &s.error {
                let _ = writeln!(md, "**Failed:** {error}\n");
            }
            if !s.rows.is_empty() {
                let _ = writeln!(md, "| measured | figure | median | min | max | runs |");
                let _ = writeln!(md, "|---|---|---|---|---|---|");
                for row in &s.rows {
                    for (name, stat) in &row.figures {
                        let _ = writeln!(
                            md,
                            "| {} | {} | {} | {} | {} | {} |",
                            row.label,
                            name,
                            fmt(stat.median, ""),
                            fmt(stat.min, ""),
                            fmt(stat.max, ""),
                            stat.runs
                        );
                    }
                }
                md.push('\n');
            }
            for (name, value) in &s.ratios {
                let _ = writeln!(md, "- ratio {name}: **{value:.2}**");
            }
            for note in &s.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_margins() {
        let s = Stat::of(&[3.0, 1.0, 2.0, 10.0]).expect("stat");
        assert_eq!((s.median, s.min, s.max, s.runs), (2.5, 1.0, 10.0, 4));
        let t = target("x", "rate", Goal::AtLeast, 2000.0, Some(1500.0), "/s", true);
        assert_eq!(t.verdict, "MISSED");
        assert!(t.margin.contains("25 %"), "{}", t.margin);
        let t = target("x", "p99", Goal::Below, 10.0, Some(4.0), "ms", true);
        assert_eq!(t.verdict, "met");
        assert_eq!(fmt(12345.6, "req/s"), "12,346 req/s");
    }
}
