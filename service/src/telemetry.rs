//! Logs: one JSON object per line with stable field names, for the SIEM; or text for a terminal.
//!
//! Every line carries `timestamp`, `level`, `service`, `lab` (on a gateway), `target`, `message`,
//! the event's own fields and the fields of the spans it happened in (`request_id`, `route`, …).
//! Security events add `event.category`, `event.action` and `event.outcome` (see `docs/operations.md`).

use std::fmt;
use std::io;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::config::{LogConfig, LogFormat};

/// Fields stamped on every line of a service.
#[derive(Clone, Debug)]
pub struct ServiceFields {
    /// `api` or `edge-gateway`.
    pub service: &'static str,
    /// The lab code of a gateway.
    pub lab: Option<String>,
}

/// Installs the global subscriber writing to standard output. A second call (tests) is a no-op.
pub fn init(fields: ServiceFields, config: &LogConfig) {
    let _ = tracing_subscriber::registry()
        .with(layer(fields, config.format, io::stdout).with_filter(filter(config)))
        .try_init();
}

/// Directives added after `log.filter`, so that no configuration can lower them: these libraries
/// write personal data at debug level. tokio-postgres logs every statement's bound parameters
/// (a searched name, a NIR, a birth date, as bytes) through the `log` crate, which `init` forwards
/// here.
pub const CAPPED_TARGETS: &[&str] = &["tokio_postgres=info", "tokio_postgres::query=info"];

/// The filter of `log.filter` (`info` when it does not parse), with [`CAPPED_TARGETS`] on top.
pub fn filter(config: &LogConfig) -> EnvFilter {
    let mut filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in CAPPED_TARGETS {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// The formatting layer, writing to `writer`; tests use it to capture what a service logs.
pub fn layer<W>(fields: ServiceFields, format: LogFormat, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines { fields })
                .with_writer(writer),
        ),
        LogFormat::Text => Box::new(tracing_subscriber::fmt::layer().with_target(true).with_writer(writer)),
    }
}

/// Our JSON line layout (tracing-subscriber's own nests fields in ways SIEM parsers dislike).
struct JsonLines {
    fields: ServiceFields,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let timestamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert("level".into(), Value::String(event.metadata().level().to_string()));
        line.insert("service".into(), Value::String(self.fields.service.into()));
        if let Some(lab) = &self.fields.lab {
            line.insert("lab".into(), Value::String(lab.clone()));
        }
        line.insert("target".into(), Value::String(event.metadata().target().into()));
        // Span fields first, so that an event's own field of the same name wins.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(formatted)
                {
                    line.extend(fields);
                }
            }
        }
        let mut visitor = JsonVisitor(&mut line);
        event.record(&mut visitor);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, on one line.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), Value::String(text));
    }
}
