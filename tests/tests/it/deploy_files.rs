//! The deployment files are real: the three environments' configurations load and validate with
//! the services' own loaders, and the systemd units carry the hardening and the migration step.

use std::path::PathBuf;

use labedge_service::config::Profile;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

#[test]
fn every_environment_has_valid_configurations_for_both_services() {
    for (env, profile) in [
        ("production", Profile::Production),
        ("preproduction", Profile::Preproduction),
        ("sandbox", Profile::Sandbox),
    ] {
        // Files named by the configurations (certificates) exist only on the servers: not checked here.
        let api = labedge_api::config::Config::load(Some(&deploy(&format!("config/{env}/api.toml"))), false)
            .unwrap_or_else(|e| panic!("{env}/api.toml: {e}"));
        assert_eq!(api.profile, profile);
        assert!(!api.http.plain_http && api.http.tls.is_some(), "{env}: HTTPS");
        assert_eq!(
            api.provisioning.upstreams.len(),
            2,
            "{env}: the cloud, then the central lab"
        );
        let gateway = labedge_edge_gateway::config::Config::load(
            Some(&deploy(&format!("config/{env}/edge-gateway.toml"))),
            false,
        )
        .unwrap_or_else(|e| panic!("{env}/edge-gateway.toml: {e}"));
        assert_eq!(gateway.profile, profile);
        assert_eq!(gateway.upstream.endpoints.len(), 2);
        assert!(gateway.upstream.endpoints.iter().all(|e| e.url.starts_with("https://")));
        assert!(
            !gateway
                .access
                .tablet_ranges
                .iter()
                .any(|r| r.contains(&"192.168.10.5".parse::<std::net::IpAddr>().unwrap())),
            "{env}: the lab's LAN is not the tablets' VPN"
        );
    }
}

#[test]
fn systemd_units_are_hardened_and_migrate_before_serving() {
    for (unit, binary) in [
        ("labedge-api.service", "api"),
        ("labedge-gateway.service", "edge-gateway"),
    ] {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
        for directive in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "MemoryDenyWriteExecute=yes",
            "SystemCallFilter=@system-service",
            "Restart=on-failure",
        ] {
            assert!(text.contains(directive), "{unit}: {directive}");
        }
        let migrate = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStartPre="))
            .unwrap_or_else(|| panic!("{unit} migrates first"));
        assert!(
            migrate.ends_with(&format!("/usr/local/bin/{binary} migrate")),
            "{unit} migrates first: {migrate}"
        );
        if binary == "edge-gateway" {
            // Issue 12: the gateway migrates as the schema's owner and serves as another role.
            assert_eq!(
                migrate,
                "+/usr/sbin/runuser -u labedge_gateway_owner -- /usr/local/bin/edge-gateway migrate"
            );
        }
        assert!(text.contains(&format!("ExecStart=/usr/local/bin/{binary} serve")));
        let user = text.lines().find_map(|l| l.strip_prefix("User=")).unwrap();
        assert!(
            user.starts_with("labedge-") && user != "root",
            "{unit}: a dedicated user"
        );
    }
}

#[test]
fn systemd_rates_the_units_exposure_low() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing: apt-get install -y systemd (deploy/test.sh installs it)");
    }
    for unit in ["labedge-api.service", "labedge-gateway.service"] {
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(deploy(&format!("systemd/{unit}")))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in {text}"));
        assert!(level <= 2.0, "{unit}: exposure {level} (0 is best, 10 worst)");
        // Verification complains only that the binaries are not installed on this machine.
        let verify = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(deploy(&format!("systemd/{unit}")))
            .output()
            .unwrap();
        let complaints = String::from_utf8_lossy(&verify.stderr);
        for line in complaints.lines() {
            assert!(
                line.contains("is not executable: No such file or directory"),
                "{unit}: {line}"
            );
        }
    }
}
