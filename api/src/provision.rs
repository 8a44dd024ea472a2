//! Provisioning: the cloud CA and the API's own server certificate (`init-pki`), and a lab's gateway
//! credential with its configuration file (`provision-gateway`), so that a new lab is one command.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::{gateways, labs};
use labedge_service::pki::{CertAuthority, IssuedCert, write_private};
use uuid::Uuid;

use crate::config::Config;

/// Common name of the cloud CA.
pub const CLOUD_CA_NAME: &str = "LabAnalyse LabEdge cloud CA";

/// `api init-pki`.
#[derive(Debug, clap::Args)]
pub struct InitPkiArgs {
    /// Host names and IP addresses the API answers on (its server certificate).
    #[arg(long = "hostname", default_values = ["localhost", "127.0.0.1"])]
    pub hostnames: Vec<String>,
}

/// Creates the cloud CA when missing, and issues the API's server certificate to the files named by
/// `http.tls.cert` and `http.tls.key`.
pub fn init_pki(config: &Config, args: &InitPkiArgs) -> anyhow::Result<String> {
    let ca = CertAuthority::load_or_create(&config.pki.dir, CLOUD_CA_NAME)?;
    let Some(tls) = &config.http.tls else {
        bail!("config key `http.tls`: not set, so there is no server certificate to issue");
    };
    let cert = ca.issue_server("LabEdge cloud API", &args.hostnames, config.pki.cert_days)?;
    write_cert(&tls.cert, &tls.key, &cert)?;
    Ok(format!(
        "cloud CA: {}\nAPI server certificate for {}: {} (key {})",
        config.pki.dir.join("ca.pem").display(),
        args.hostnames.join(", "),
        tls.cert.display(),
        tls.key.display()
    ))
}

/// `api provision-gateway`.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Code of the lab (it must exist).
    #[arg(long)]
    pub lab: String,
    /// Directory the gateway's certificates and configuration are written to.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Host names and IP addresses tablets reach the gateway by (its server certificate).
    #[arg(long = "hostname", default_values = ["localhost", "127.0.0.1"])]
    pub hostnames: Vec<String>,
    /// Address the gateway listens on for tablets.
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// The gateway's own PostgreSQL database (default: labedge_edge_<lab> on this machine).
    #[arg(long)]
    pub database_url: Option<String>,
    /// The gateway's Redis.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// The tablets' VPN range(s): the only networks that reach the tablet routes.
    #[arg(long = "tablet-range", default_values = ["10.8.0.0/16"])]
    pub tablet_ranges: Vec<ipnet::IpNet>,
    /// The lab network(s) the admin console is reached from.
    #[arg(long = "admin-range", default_values = ["127.0.0.0/8", "::1/128"])]
    pub admin_ranges: Vec<ipnet::IpNet>,
    /// Address of the gateway's admin console listener (the lab's LAN); required for production,
    /// where the console is never served on the tablet listener.
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Address of the gateway's `/metrics` listener (reached by the supervision); required for
    /// production.
    #[arg(long)]
    pub monitoring_listen: Option<SocketAddr>,
    /// The profile written into the gateway's configuration (default: the API's own).
    #[arg(long)]
    pub profile: Option<labedge_service::config::Profile>,
}

/// Issues the lab's gateway credential (client certificate signed by the cloud CA, recorded in
/// `gateways` with its certificate), its tablet-side server certificate, and writes the gateway's configuration file.
pub async fn provision(config: &Config, args: &ProvisionArgs) -> anyhow::Result<String> {
    if args.profile.unwrap_or(config.profile) == labedge_service::config::Profile::Production {
        if args.admin_listen.is_none() {
            bail!("--admin-listen: required for a production gateway (the console gets a listener of its own)");
        }
        if args.monitoring_listen.is_none() {
            bail!("--monitoring-listen: required for a production gateway (/metrics gets a listener of its own)");
        }
    }
    if config.provisioning.upstreams.is_empty() {
        bail!("config key `provisioning.upstreams`: empty, so the gateway would have no upstream to relay to");
    }
    let mut conn = AsyncPgConnection::establish(config.database.url.expose_secret())
        .await
        .context("connect to the cloud database")?;
    let (lab_id, lab_name): (Uuid, String) = labs::table
        .filter(labs::code.eq(&args.lab))
        .select((labs::id, labs::name))
        .first(&mut conn)
        .await
        .optional()?
        .with_context(|| format!("no lab with code {} in the cloud database", args.lab))?;

    let ca = CertAuthority::load_or_create(&config.pki.dir, CLOUD_CA_NAME)?;
    let days = config.pki.cert_days;
    let client = ca.issue_client(&format!("LabEdge gateway {}", args.lab), &args.lab, days)?;
    let server = ca.issue_server(&format!("LabEdge gateway {}", args.lab), &args.hostnames, days)?;

    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let files = GatewayFiles::in_dir(&out);
    std::fs::write(&files.ca, ca.cert_pem()).with_context(|| format!("write {}", files.ca.display()))?;
    write_cert(&files.client_cert, &files.client_key, &client)?;
    write_cert(&files.server_cert, &files.server_key, &server)?;

    diesel::insert_into(gateways::table)
        .values((
            gateways::id.eq(Uuid::now_v7()),
            gateways::lab_id.eq(lab_id),
            gateways::cert_serial.eq(&client.serial_hex),
            gateways::cert_sha256.eq(&client.sha256_hex),
            gateways::cert_not_after.eq(client.not_after),
            // Its public key verifies the gateway's signed audit checkpoints.
            gateways::cert_pem.eq(&client.cert_pem),
        ))
        .execute(&mut conn)
        .await?;

    let database_url = args.database_url.clone().unwrap_or_else(|| {
        format!(
            "postgres://labedge:labedge@127.0.0.1:5432/{}",
            edge_database_name(&args.lab)
        )
    });
    let toml = gateway_config(config, args, &lab_name, &files, &database_url);
    write_private(&files.config, &toml)?;
    Ok(format!(
        "gateway of {} ({lab_name}) provisioned:\n  configuration  {}\n  credential     {} (serial {}, valid until {})\n  cloud CA       {}",
        args.lab,
        files.config.display(),
        files.client_cert.display(),
        client.serial_hex,
        client.not_after.date(),
        files.ca.display()
    ))
}

/// The default name of a lab's edge database on a machine that hosts several (demo, tests).
pub fn edge_database_name(lab_code: &str) -> String {
    format!("labedge_edge_{}", lab_code.to_ascii_lowercase().replace('-', "_"))
}

struct GatewayFiles {
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    config: PathBuf,
    lab_ca: PathBuf,
}

impl GatewayFiles {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("cloud-ca.pem"),
            client_cert: dir.join("upstream-client.pem"),
            client_key: dir.join("upstream-client.key"),
            server_cert: dir.join("tablet-server.pem"),
            server_key: dir.join("tablet-server.key"),
            config: dir.join("edge-gateway.toml"),
            lab_ca: dir.join("lab-ca"),
        }
    }
}

fn write_cert(cert_path: &Path, key_path: &Path, cert: &IssuedCert) -> anyhow::Result<()> {
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(cert_path, &cert.cert_pem).with_context(|| format!("write {}", cert_path.display()))?;
    if let Some(key) = &cert.key_pem {
        write_private(key_path, key)?;
    }
    Ok(())
}

fn gateway_config(
    config: &Config,
    args: &ProvisionArgs,
    lab_name: &str,
    files: &GatewayFiles,
    database_url: &str,
) -> String {
    let q = |p: &Path| toml_string(&p.display().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# LabEdge gateway of lab {} ({lab_name}), written by `api provision-gateway`.",
        args.lab
    );
    let _ = writeln!(
        out,
        "# Start it with: edge-gateway --config <this file> migrate && edge-gateway --config <this file> serve\n"
    );
    let profile = args.profile.unwrap_or(config.profile);
    let _ = writeln!(out, "profile = {}", toml_string(profile.as_str()));
    let _ = writeln!(out, "lab = {}\n", toml_string(&args.lab));
    let _ = writeln!(out, "[http]\naddr = {}", toml_string(&args.listen.to_string()));
    let _ = writeln!(
        out,
        "tls = {{ cert = {}, key = {} }}\n",
        q(&files.server_cert),
        q(&files.server_key)
    );
    if let Some(addr) = args.admin_listen {
        let _ = writeln!(out, "[admin]\naddr = {}\n", toml_string(&addr.to_string()));
    }
    if let Some(addr) = args.monitoring_listen {
        let _ = writeln!(out, "[monitoring]\naddr = {}\n", toml_string(&addr.to_string()));
    }
    let _ = writeln!(out, "[database]\nurl = {}\n", toml_string(database_url));
    let _ = writeln!(out, "[redis]\nurl = {}", toml_string(&args.redis_url));
    let _ = writeln!(out, "key_prefix = {}\n", toml_string(&format!("labedge:{}:", args.lab)));
    let _ = writeln!(
        out,
        "[upstream]\nca = {}\ncert = {}\nkey = {}",
        q(&files.ca),
        q(&files.client_cert),
        q(&files.client_key)
    );
    let _ = writeln!(out, "endpoints = [");
    for upstream in &config.provisioning.upstreams {
        let _ = writeln!(
            out,
            "  {{ name = {}, url = {} }},",
            toml_string(&upstream.name),
            toml_string(&upstream.url)
        );
    }
    let _ = writeln!(out, "]\n");
    let list = |nets: &[ipnet::IpNet]| {
        nets.iter()
            .map(|n| toml_string(&n.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "[access]\ntablet_ranges = [{}]", list(&args.tablet_ranges));
    let _ = writeln!(out, "admin_ranges = [{}]", list(&args.admin_ranges));
    let _ = writeln!(out, "monitoring_ranges = [\"127.0.0.0/8\", \"::1/128\"]\n");
    let _ = writeln!(
        out,
        "[pki]\n# The lab's CA for its tablets' client certificates, created at the first start."
    );
    let _ = writeln!(out, "dir = {}", q(&files.lab_ca));
    let _ = writeln!(
        out,
        "\n[auth]\n# Seals the token signing keys in the gateway's database. Generated for this gateway; on a\n\
         # server, move it to LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY in /etc/labedge-gateway/env.\n\
         key_encryption_key = {}",
        toml_string(&random_kek())
    );
    out
}

/// 32 random bytes in base64: the gateway's key-encryption key (written into its private file).
fn random_kek() -> String {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    labedge_service::secrets::fill_random(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}
