//! The Prometheus text exposition format (version 0.0.4), parsed strictly enough that a malformed
//! `/metrics` answer fails the test rather than slipping by; and the metric names documented in
//! `docs/metrics.md` and written in the services' code, so that neither can drift from the other.
//!
//! Why a parser of our own rather than a crate: the job here is to *reject* what a scraper would
//! choke on, and the crates of crates.io that parse this format either accept too much or do not pass
//! `deny.toml`. `prometheus-parse` (0.2.5, Apache-2.0, the usual choice) skips any line its regular
//! expressions do not match, a value that does not parse, and a sample of an undeclared histogram
//! without a word, and splits label sets on `,` and `=` without honouring quotes or escapes, so a
//! label value holding either is silently mangled: a broken exposition would pass. `openmetrics-parser`
//! is strict but LGPL-3.0, which `deny.toml` does not allow. What is left is some 150 lines that follow
//! the format's grammar (names, quoted and escaped label values, `+Inf`/`NaN`, timestamps, one `TYPE`
//! per family, the suffixes a histogram or summary may have) and name the offending line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (`…_bucket`, `…_count`, `…_sum` for histograms and summaries).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Whether every `(name, value)` pair of `wanted` is among its labels.
    pub fn has(&self, wanted: &[(&str, &str)]) -> bool {
        wanted.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// A whole scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// `# TYPE` of each family.
    pub types: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses `text`; an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut scrape = Scrape::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let mut words = rest.split_whitespace();
                match words.next() {
                    Some("TYPE") => {
                        let name = words.next().ok_or_else(|| at("TYPE without a name".into()))?;
                        let kind = words.next().ok_or_else(|| at("TYPE without a type".into()))?;
                        if !matches!(kind, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
                            return Err(at(format!("unknown type {kind}")));
                        }
                        check_name(name).map_err(at)?;
                        if scrape.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                            return Err(at(format!("second TYPE for {name}")));
                        }
                    }
                    Some("HELP") => {
                        let name = words.next().ok_or_else(|| at("HELP without a name".into()))?;
                        check_name(name).map_err(at)?;
                    }
                    // Any other comment is allowed by the format.
                    _ => {}
                }
                continue;
            }
            scrape.samples.push(parse_sample(line).map_err(at)?);
        }
        for sample in &scrape.samples {
            let family = scrape.family_of(&sample.name);
            let Some(kind) = scrape.types.get(&family) else {
                return Err(format!("{} has no TYPE line", sample.name));
            };
            let suffix = &sample.name[family.len()..];
            let ok = match kind.as_str() {
                "histogram" => match suffix {
                    "_bucket" => sample.label("le").is_some(),
                    "_sum" | "_count" => true,
                    _ => false,
                },
                "summary" => match suffix {
                    "" => sample.label("quantile").is_some(),
                    "_sum" | "_count" => true,
                    _ => false,
                },
                _ => suffix.is_empty(),
            };
            if !ok {
                return Err(format!("{} does not fit its family {family} ({kind})", sample.name));
            }
        }
        Ok(scrape)
    }

    /// The family a sample name belongs to (its name less `_bucket`, `_sum`, `_count` when that
    /// family is a histogram or summary).
    pub fn family_of(&self, sample: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && matches!(self.types.get(base).map(String::as_str), Some("histogram" | "summary"))
            {
                return base.to_owned();
            }
        }
        sample.to_owned()
    }

    /// The samples named `name` that carry every label of `wanted`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        wanted: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name && s.has(wanted))
    }

    /// The value of the one sample named `name` with exactly the labels of `labels`; `None` when
    /// there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let exact: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == exact)
            .map(|s| s.value)
    }

    /// The sum of the samples named `name` that carry every label of `wanted` (0 when none).
    pub fn sum(&self, name: &str, wanted: &[(&str, &str)]) -> f64 {
        self.find(name, wanted).map(|s| s.value).sum()
    }

    /// Every family and the label names its samples carry (`le` and `quantile` left out).
    pub fn label_names(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut families: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for sample in &self.samples {
            let names = families.entry(self.family_of(&sample.name)).or_default();
            names.extend(sample.labels.keys().filter(|k| *k != "le" && *k != "quantile").cloned());
        }
        families
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("a label without `=`")?;
            let key = rest[..eq].trim();
            if key.is_empty()
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || key.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("invalid label name {key:?}"));
            }
            rest = rest[eq + 1..].trim_start();
            rest = rest
                .strip_prefix('"')
                .ok_or("a label value without its opening quote")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("invalid escape {other:?} in a label value")),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err("an unterminated label value".into()),
                }
            };
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            rest = rest[end + 1..].trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("labels not separated by `,`".into());
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("a sample without a value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|e| format!("timestamp {timestamp:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A metric as `docs/metrics.md` documents it (one row of its metric tables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Documented {
    /// The name.
    pub name: String,
    /// `counter`, `gauge`, `histogram` or `summary`.
    pub kind: String,
    /// Its label names.
    pub labels: BTreeSet<String>,
}

/// The workspace's root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The metrics documented in `docs/metrics.md`: every table row whose first cell is a backquoted
/// name starting with `labedge_` and whose second cell is its type.
pub fn documented_metrics() -> BTreeMap<String, Documented> {
    let text = std::fs::read_to_string(workspace().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| name | type | labels | meaning |` splits into an empty first and last cell.
        if cells.len() < 5 || !cells[0].is_empty() {
            continue;
        }
        let Some(name) = backquoted(cells[1]).into_iter().next() else {
            continue;
        };
        if !name.starts_with("labedge_") || !matches!(cells[2], "counter" | "gauge" | "histogram" | "summary") {
            continue;
        }
        let documented = Documented {
            name: name.clone(),
            kind: cells[2].to_owned(),
            labels: backquoted(cells[3]).into_iter().collect(),
        };
        assert!(
            found.insert(name.clone(), documented).is_none(),
            "docs/metrics.md documents {name} twice"
        );
    }
    found
}

/// The closed value sets of `docs/metrics.md`'s label table: `(metric, label) -> values`, for the
/// rows that list their values (backquoted, `""` for the empty value).
pub fn documented_label_values() -> BTreeMap<(String, String), BTreeSet<String>> {
    let text = std::fs::read_to_string(workspace().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut sets = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            in_table = line.trim() == "## Label values";
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !in_table || cells.len() < 5 || !cells[0].is_empty() {
            continue;
        }
        let (Some(metric), Some(label)) = (
            backquoted(cells[1]).into_iter().next(),
            backquoted(cells[2]).into_iter().next(),
        ) else {
            continue;
        };
        let values: BTreeSet<String> = backquoted(cells[3])
            .into_iter()
            .map(|v| if v == "\"\"" { String::new() } else { v })
            .collect();
        sets.insert((metric, label), values);
    }
    sets
}

fn backquoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// The metric names the services' code registers: the first argument of every `counter!`,
/// `gauge!` and `histogram!` in `edge-gateway/src`, `api/src`, `service/src` and `schema/src`.
pub fn metric_names_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in ["edge-gateway/src", "api/src", "service/src", "schema/src"] {
        let mut files = Vec::new();
        rust_files(&workspace().join(dir), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source file");
            for mac in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(mac) {
                    let rest = text[at + mac.len()..].trim_start();
                    let name = rest
                        .strip_prefix('"')
                        .and_then(|r| r.split_once('"'))
                        .map(|(name, _)| name.to_owned())
                        .unwrap_or_else(|| {
                            panic!(
                                "{}: a metric whose name is not a string literal; the doc check needs literals",
                                file.display()
                            )
                        });
                    names.insert(name);
                }
            }
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_escapes() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 3\n\
                    # TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.5\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n\
                    h_seconds_sum 0.7\nh_seconds_count 2\n# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum 0\ns_count 0\n\
                    # TYPE g gauge\ng -1.5e3 1700000000000\n";
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(scrape.value("x_total", &[("a", "1"), ("b", "q\"uo\\te\n")]), Some(3.0));
        assert_eq!(scrape.family_of("h_seconds_bucket"), "h_seconds");
        assert_eq!(scrape.family_of("s_count"), "s");
        assert_eq!(scrape.sum("h_seconds_bucket", &[]), 3.0);
        assert_eq!(scrape.value("g", &[]), Some(-1500.0));
        assert!(scrape.label_names()["h_seconds"].is_empty());
    }

    #[test]
    fn refuses_what_is_not_the_format() {
        for bad in [
            "x 1\n",                                    // no TYPE
            "# TYPE x counter\nx{a=\"1} 1\n",           // unterminated value
            "# TYPE x counter\nx{a=1} 1\n",             // unquoted value
            "# TYPE x counter\nx one\n",                // not a number
            "# TYPE x counter\nx_bucket 1\n",           // not of its family
            "# TYPE x histogram\nx_bucket 1\n",         // a bucket without `le`
            "# TYPE x wibble\nx 1\n",                   // unknown type
            "# TYPE x counter\nx{a=\"1\" b=\"2\"} 1\n", // no comma
        ] {
            assert!(Scrape::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
