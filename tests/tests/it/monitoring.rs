//! The supervision files of `deploy/` are real: Prometheus' own tool accepts the scrape
//! configuration and the alert rules and shows each alert firing on its unit tests; the Grafana
//! dashboard parses; every expression of the rules and the dashboard names only metrics that
//! `docs/metrics.md` documents (or node_exporter's, or `up`); and the rsyslog drop-in that ships
//! the services' logs to the SIEM is valid for rsyslogd and routes security events to their own
//! stream over TLS, run against a local TLS receiver.
//!
//! promtool comes from Debian's `prometheus` package and rsyslogd from `rsyslog` and
//! `rsyslog-gnutls` (`deploy/lib/services.sh` installs them); a missing tool fails the test.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labedge_service::config::{ClientAuth, ServerTlsConfig};
use labedge_service::pki::write_private;
use labedge_tests::cluster::free_port;
use labedge_tests::fixtures::TestPki;
use labedge_tests::prometheus::{documented_metrics, workspace};

const INSTALL: &str =
    "apt-get install -y prometheus rsyslog rsyslog-gnutls (deploy/lib/services.sh ensure_test_tools does it)";

fn monitoring(file: &str) -> PathBuf {
    workspace().join("deploy/monitoring").join(file)
}

/// A tool's path: on PATH, or in /usr/sbin (rsyslogd) for a PATH without it.
fn tool_path(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.is_file() { sbin } else { PathBuf::from(name) }
}

fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(tool_path(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} cannot be run ({e}): {INSTALL}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn promtool_accepts_the_rules_and_the_scrape_config_and_each_alert_fires_in_its_unit_tests() {
    let version = tool("promtool", &["--version"]);
    assert!(version.status.success(), "promtool --version: {}", text(&version));

    let rules = monitoring("alerts.rules.yml");
    let out = tool("promtool", &["check", "rules", rules.to_str().unwrap()]);
    assert!(out.status.success(), "promtool check rules:\n{}", text(&out));

    // The configuration as installed: /etc/prometheus/prometheus.yml with labedge/ beside it.
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("labedge")).unwrap();
    std::fs::copy(monitoring("prometheus.yml"), etc.path().join("prometheus.yml")).unwrap();
    std::fs::copy(&rules, etc.path().join("labedge/alerts.rules.yml")).unwrap();
    let pki = TestPki::new(&etc.path().join("pki"));
    std::fs::copy(pki.ca_path(), etc.path().join("labedge/cloud-ca.pem")).unwrap();
    let config = etc.path().join("prometheus.yml");
    let out = tool("promtool", &["check", "config", config.to_str().unwrap()]);
    let said = text(&out);
    assert!(out.status.success(), "promtool check config:\n{said}");
    assert!(
        said.contains("1 rule files found"),
        "the config loads the rules: {said}"
    );

    let out = tool(
        "promtool",
        &["test", "rules", monitoring("alerts.test.yml").to_str().unwrap()],
    );
    assert!(out.status.success(), "promtool test rules:\n{}", text(&out));

    // Every alert asked for exists, and every alert has a unit test in which it fires.
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    let alerts: BTreeSet<String> = yaml_values(&rules_text, "alert").into_iter().collect();
    for wanted in [
        "LabEdgeGatewayDegraded",
        "LabEdgeOldestUnsentWriteTooOld",
        "LabEdgeDeadLetters",
        "LabEdgeAuthFailureBurst",
        "LabEdgeCertificateExpiresSoon",
        "LabEdgeDiskAlmostFull",
    ] {
        assert!(alerts.contains(wanted), "alerts.rules.yml has no {wanted}");
    }
    let tests_text = std::fs::read_to_string(monitoring("alerts.test.yml")).unwrap();
    let fired = alerts_shown_firing(&tests_text);
    assert_eq!(
        alerts, fired,
        "each alert of alerts.rules.yml is shown to fire in alerts.test.yml"
    );
    // The thresholds the issue names are the ones in the rules.
    let rule = |name: &str| rule_expr(&rules_text, name);
    assert!(rule("LabEdgeOldestUnsentWriteTooOld").contains("> 15 * 60"));
    assert!(rule("LabEdgeCertificateExpiresSoon").contains("< 30 * 86400"));
    assert!(rules_text.contains(
        "alert: LabEdgeGatewayDegraded\n        expr: labedge_upstream_state{state=\"degraded\"} == 1\n        for: 10m"
    ));
}

#[test]
fn rules_and_dashboard_name_only_documented_metrics() {
    let documented: BTreeSet<String> = documented_metrics().into_keys().collect();
    let known = |name: &str| {
        documented.contains(name)
            || ["_bucket", "_count", "_sum"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|base| documented.contains(base)))
            || name.starts_with("node_")
            || name == "up"
    };

    let rules_text = std::fs::read_to_string(monitoring("alerts.rules.yml")).unwrap();
    let expressions = yaml_values(&rules_text, "expr");
    assert_eq!(
        expressions.len(),
        yaml_values(&rules_text, "alert").len(),
        "one expression per alert"
    );
    let mut used = BTreeSet::new();
    for expr in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(
                known(&name),
                "alerts.rules.yml uses {name}, which docs/metrics.md does not document: {expr}"
            );
            used.insert(name);
        }
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring("grafana-central.json")).unwrap())
            .expect("grafana-central.json is JSON");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().expect("panel id")),
            "panel ids are unique"
        );
        let grid = &panel["gridPos"];
        assert!(
            ["x", "y", "w", "h"].iter().all(|k| grid[k].is_i64()),
            "{}: gridPos",
            panel["title"]
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no targets", panel["title"]));
        assert!(!targets.is_empty(), "{}: no targets", panel["title"]);
        for target in targets {
            exprs.push((
                panel["title"].to_string(),
                target["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap();
        // label_values(metric, label): the metric is the first argument.
        let metric = query
            .strip_prefix("label_values(")
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("a variable query of another form: {query}"));
        exprs.push((format!("variable {}", variable["name"]), metric.trim().to_owned()));
    }
    for (title, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{title}: no metric in {expr}");
        for name in names {
            assert!(
                known(&name),
                "dashboard panel {title} uses {name}, which docs/metrics.md does not document: {expr}"
            );
            used.insert(name);
        }
    }
    // The central view shows what the issue lists.
    for wanted in [
        "labedge_upstream_state",
        "labedge_outbox_pending",
        "labedge_outbox_oldest_pending_seconds",
        "labedge_dead_letters_open",
        "labedge_relay_mutations_total",
        "labedge_sync_last_success_timestamp_seconds",
        "labedge_cache_hits_total",
        "labedge_security_events_total",
        "labedge_tablets_enrolled",
        "labedge_tablets_active",
        "labedge_http_request_duration_seconds_bucket",
        "labedge_certificate_expiry_timestamp_seconds",
    ] {
        assert!(
            used.contains(wanted),
            "neither the rules nor the dashboard use {wanted}"
        );
    }
}

#[test]
fn metric_names_are_read_out_of_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.95, sum by (job, route, le) (rate(labedge_http_request_duration_seconds_bucket{route!~\"/x|y\"}[5m])))"
        ),
        BTreeSet::from(["labedge_http_request_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        metric_names(
            "count(up{job=\"a\"} == 0) or vector(0) and on (instance) group_left (lab) node_uname_info offset 5m"
        ),
        BTreeSet::from(["up".to_owned(), "node_uname_info".to_owned()])
    );
    assert_eq!(
        metric_names("a_total / ignoring(x) b - time() < 30 * 86400 unless c > bool 1e3"),
        BTreeSet::from(["a_total".to_owned(), "b".to_owned(), "c".to_owned()])
    );
}

/// The metric names of a PromQL expression: identifiers that are neither a function, a keyword,
/// nor in a label matcher, a label list, a string or a range.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
        // Aggregations, which may be followed by `by (…)` rather than by their parenthesis.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: usize, close: char| -> usize {
        let mut j = i + 1;
        let mut quote: Option<char> = None;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(_) if c == '\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None if c == close => return j + 1,
                None => {}
            }
            j += 1;
        }
        chars.len()
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A string: skip to its end.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            i = j + 1;
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (1e3, 0.95, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut k = i;
            while k < chars.len() && chars[k].is_whitespace() {
                k += 1;
            }
            let next = chars.get(k).copied();
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                if next == Some('(') {
                    i = skip_to(k, ')');
                }
            } else if KEYWORDS.contains(&lower.as_str()) || next == Some('(') {
                // A keyword, or a function or aggregation called.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The values of `key:` in a YAML text: plain or quoted scalars on the key's line, or the
/// block scalar (`|`, `>`) that follows it.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut values = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let Some(rest) = trimmed.strip_prefix(&format!("{key}:")) else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            values.push(block.join("\n").trim().to_owned());
        } else {
            values.push(rest.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    values
}

/// The expression of alert `name`.
fn rule_expr(rules: &str, name: &str) -> String {
    let from = rules
        .find(&format!("alert: {name}\n"))
        .unwrap_or_else(|| panic!("no alert {name}"));
    yaml_values(&rules[from..], "expr").into_iter().next().unwrap()
}

/// The alerts that some case of a promtool test file expects to be firing (a non-empty
/// `exp_alerts`).
fn alerts_shown_firing(tests: &str) -> BTreeSet<String> {
    let mut fired = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in tests.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if trimmed == "exp_alerts:"
            && let Some(name) = current.take()
        {
            fired.insert(name);
        } else if trimmed.starts_with("exp_alerts:") {
            current = None;
        }
    }
    fired
}

/// A TLS syslog receiver (RFC 5425: octet-counted frames) on a free port, requiring a client
/// certificate; the frames it received.
struct SiemReceiver {
    port: u16,
    frames: Arc<Mutex<Vec<String>>>,
}

impl SiemReceiver {
    fn start(tls: ServerTlsConfig) -> Self {
        let config = Arc::new(labedge_service::tls::server_config(&tls).expect("receiver TLS"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&frames);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = Arc::clone(&config);
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    let Ok(connection) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(connection, stream);
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = tls.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        // Whole frames only: "<length> <message>".
                        while let Some(space) = buffer.iter().position(|b| *b == b' ') {
                            let Some(length) = std::str::from_utf8(&buffer[..space])
                                .ok()
                                .and_then(|l| l.parse::<usize>().ok())
                            else {
                                sink.lock()
                                    .unwrap()
                                    .push(format!("NOT A FRAME: {}", String::from_utf8_lossy(&buffer)));
                                return;
                            };
                            if buffer.len() < space + 1 + length {
                                break;
                            }
                            let frame = String::from_utf8_lossy(&buffer[space + 1..space + 1 + length]).into_owned();
                            sink.lock().unwrap().push(frame);
                            buffer.drain(..space + 1 + length);
                        }
                    }
                });
            }
        });
        Self { port, frames }
    }

    fn frames(&self) -> Vec<String> {
        self.frames.lock().unwrap().clone()
    }
}

/// rsyslogd in the foreground, stopped when dropped.
struct Rsyslogd(std::process::Child, PathBuf);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Rsyslogd {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

#[test]
fn the_rsyslog_drop_in_is_valid_and_ships_security_events_on_their_own_stream_over_tls() {
    let conf = workspace().join("deploy/siem/labedge-siem.conf");
    let version = tool("rsyslogd", &["-v"]);
    assert!(version.status.success(), "rsyslogd -v: {}", text(&version));
    // -N1 reads and checks the whole configuration (modules, parameters, templates) and starts
    // nothing: the system's rsyslog is not touched.
    let out = tool("rsyslogd", &["-N1", "-f", conf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "rsyslogd -N1 -f {}:\n{}",
        conf.display(),
        text(&out)
    );
    let drop_in = std::fs::read_to_string(&conf).unwrap();
    for unit in ["labedge-api.service", "labedge-gateway.service"] {
        assert!(drop_in.contains(&format!("\"{unit}\"")), "the drop-in keeps {unit}");
        let unit_file = workspace().join("deploy/systemd").join(unit);
        assert!(unit_file.is_file(), "{unit} is a unit of deploy/systemd");
    }

    // The same file run for real, with the journal replaced by a local input that gives each line
    // the unit its app-name says, and the SIEM by a TLS receiver on this machine that trusts the test
    // CA and wants the sender's certificate.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = TestPki::new(&d.join("pki"));
    let issued = pki
        .ca
        .issue_server("siem", &["siem.labanalyse.internal".into()], 2)
        .unwrap();
    std::fs::write(d.join("siem.pem"), &issued.cert_pem).unwrap();
    write_private(&d.join("siem.key"), issued.key_pem.as_deref().unwrap()).unwrap();
    let (client_cert, client_key) = pki.client("client", "rsyslog");
    std::fs::copy(&client_cert, d.join("client.pem")).unwrap();
    std::fs::copy(&client_key, d.join("client.key")).unwrap();
    std::fs::copy(pki.ca_path(), d.join("ca.pem")).unwrap();
    let receiver = SiemReceiver::start(ServerTlsConfig {
        cert: d.join("siem.pem"),
        key: d.join("siem.key"),
        client_ca: Some(pki.ca_path()),
        client_auth: ClientAuth::Required,
    });
    let input_port = free_port();
    let journal_line = drop_in
        .lines()
        .find(|l| l.starts_with("module(load=\"imjournal\""))
        .expect("the drop-in loads imjournal");
    let target = "target=\"siem.labanalyse.internal\" port=\"6514\"";
    assert_eq!(drop_in.matches(target).count(), 2, "two streams to the SIEM");
    std::fs::create_dir(d.join("work")).unwrap();
    let wrapper = format!(
        "global(workDirectory=\"{dir}/work\")\n\
         module(load=\"imptcp\")\n\
         input(type=\"imptcp\" address=\"127.0.0.1\" port=\"{input_port}\" ruleset=\"labedge_test_journal\")\n\
         {body}\n\
         ruleset(name=\"labedge_test_journal\") {{\n  set $!_SYSTEMD_UNIT = $app-name & \".service\";\n  call labedge_journal\n}}\n\
         if $programname startswith \"rsyslog\" then action(type=\"omfile\" file=\"{dir}/rsyslogd.log\")\n",
        dir = d.display(),
        body = drop_in
            .replace(journal_line, "")
            .replace(target, &format!("target=\"127.0.0.1\" port=\"{}\"", receiver.port))
            .replace("/etc/labedge-siem/", &format!("{}/", d.display())),
    );
    let wrapper_path = d.join("rsyslog-test.conf");
    std::fs::write(&wrapper_path, wrapper).unwrap();
    let out = tool("rsyslogd", &["-N1", "-f", wrapper_path.to_str().unwrap()]);
    assert!(out.status.success(), "the test wrapper:\n{}", text(&out));
    let log = d.join("rsyslogd.out");
    let child = Command::new(tool_path("rsyslogd"))
        .args([
            "-n",
            "-f",
            wrapper_path.to_str().unwrap(),
            "-i",
            d.join("rsyslogd.pid").to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("rsyslogd cannot be run ({e}): {INSTALL}"));
    let mut rsyslogd = Rsyslogd(child, log);

    let security = r#"{"timestamp":"2025-01-01T08:00:00Z","level":"WARN","service":"edge-gateway","lab":"VILLEURBANNE","target":"security","event.kind":"security","event.category":"authentication","event.action":"login","event.outcome":"failure","event.reason":"bad_pin","device.id":"0190f5a4-1c2d-7e3f-8a9b-0c1d2e3f4a5b","message":"security event"}"#;
    let app = r#"{"timestamp":"2025-01-01T08:00:01Z","level":"INFO","service":"api","target":"labedge_api::startup","addr":"0.0.0.0:8443","message":"api listening"}"#;
    let not_json = "thread 'main' panicked at the gateway";
    let other_unit = r#"{"event.category":"authentication","message":"not ours"}"#;
    let lines = [
        ("sshd", other_unit),
        ("labedge-gateway", security),
        ("labedge-api", app),
        ("labedge-gateway", not_json),
    ];
    let started = Instant::now();
    let mut input = loop {
        match std::net::TcpStream::connect(("127.0.0.1", input_port)) {
            Ok(stream) => break stream,
            Err(_) => {
                if let Ok(Some(status)) = rsyslogd.0.try_wait() {
                    panic!("rsyslogd exited ({status}):\n{}", rsyslogd.output());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "rsyslogd did not listen:\n{}",
                    rsyslogd.output()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    for (app_name, line) in lines {
        writeln!(input, "<14>1 2025-01-01T08:00:00Z lab-host {app_name} - - - {line}").unwrap();
    }
    input.flush().unwrap();

    let started = Instant::now();
    while receiver.frames().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the SIEM received {:?}\nrsyslogd:\n{}{}",
            receiver.frames(),
            rsyslogd.output(),
            std::fs::read_to_string(d.join("rsyslogd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything else (the other unit's line) would have come by now.
    std::thread::sleep(Duration::from_millis(700));
    let frames = receiver.frames();
    assert_eq!(frames.len(), 3, "only the LabEdge units' lines: {frames:#?}");
    let stream_of = |body: &str| -> String {
        let frame = frames
            .iter()
            .find(|f| f.ends_with(&format!(" - - - {body}")))
            .unwrap_or_else(|| panic!("{body} not received unchanged: {frames:#?}"));
        // RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
        let fields: Vec<&str> = frame.splitn(7, ' ').collect();
        assert!(fields[0].starts_with('<') && fields[0].ends_with(">1"), "{frame}");
        assert_eq!(fields[2], "lab-host", "the sending host is named: {frame}");
        fields[3].to_owned()
    };
    assert_eq!(stream_of(security), "labedge-security");
    assert_eq!(stream_of(app), "labedge-app");
    assert_eq!(
        stream_of(not_json),
        "labedge-app",
        "a line that is not JSON still reaches the SIEM"
    );
    assert!(!frames.iter().any(|f| f.contains("not ours")), "{frames:#?}");
}
