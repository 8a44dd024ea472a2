//! The network policy of requirement S-2, applied for real: the rules `deploy/vpn/generate.sh`
//! writes are loaded between network namespaces on this machine (veth pairs stand in for the
//! WireGuard tunnels: this machine's kernel has no WireGuard module), and connections are tried.
//! A proximity lab reaches the cloud's and the central lab's APIs but not another lab; a tablet
//! reaches its gateway's tablet port and nothing else.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Namespaces, links and listeners of one test, removed on drop.
struct Topology {
    id: String,
    listeners: Vec<Child>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Topology {
    fn ns(&self, name: &str) -> String {
        format!("le{}{name}", self.id)
    }

    fn exec(&self, ns: &str, args: &[&str]) {
        let ns = self.ns(ns);
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend_from_slice(args);
        sh(&full);
    }

    /// Links namespace `a` (address `a_ip`) to `b` (address `b_ip`) with a veth pair.
    fn link(&self, a: &str, a_ip: &str, b: &str, b_ip: &str) {
        // Each end lives in its own namespace: named after the other end (interface names are short).
        let (va, vb) = (format!("to-{b}"), format!("to-{a}"));
        sh(&[
            "ip",
            "link",
            "add",
            &va,
            "netns",
            &self.ns(a),
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &self.ns(b),
        ]);
        self.exec(a, &["ip", "addr", "add", a_ip, "dev", &va]);
        self.exec(b, &["ip", "addr", "add", b_ip, "dev", &vb]);
        self.exec(a, &["ip", "link", "set", &va, "up"]);
        self.exec(b, &["ip", "link", "set", &vb, "up"]);
    }

    fn listen(&mut self, ns: &str, port: u16) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(ns),
                "socat",
                &format!("TCP-LISTEN:{port},fork,reuseaddr"),
                "SYSTEM:echo open",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.listeners.push(child);
    }

    /// Whether a TCP connection from `ns` to `address:port` gets through.
    fn reaches(&self, ns: &str, address: &str, port: u16) -> bool {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(ns),
                "socat",
                "-T",
                "2",
                "-",
                &format!("TCP:{address}:{port},connect-timeout=2"),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("open")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for child in &mut self.listeners {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in ["router", "cloud", "central", "lab1", "lab2", "tablet", "monitor"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(name)]).output();
        }
    }
}

fn tool(name: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .unwrap()
            .status
            .success(),
        "{name} is missing: apt-get install -y iproute2 nftables socat wireguard-tools (deploy/test.sh installs them)"
    );
}

#[test]
fn labs_reach_the_cloud_and_the_central_lab_never_each_other_and_tablets_only_their_gateway() {
    for name in ["ip", "nft", "socat", "wg"] {
        tool(name);
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.conf");
    std::fs::write(
        &plan,
        "CLOUD_NET=10.10.0.0/24\nCLOUD_API=10.10.0.10\nCLOUD_ENDPOINT=cloud.test:51820\nCLOUD_TUNNEL=10.99.0.1\n\
         CENTRAL_NET=10.20.0.0/24\nCENTRAL_API=10.20.0.10\nCENTRAL_ENDPOINT=central.test:51821\nCENTRAL_TUNNEL=10.98.0.1\n\
         MONITORING_NET=10.200.0.0/24\n\
         LABS=\"LAB1:10.31.0.0/24:10.8.1.0/24:10.31.0.10:lab1.test:51822\nLAB2:10.32.0.0/24:10.8.2.0/24:10.32.0.10:lab2.test:51822\"\n\
         TABLETS_PER_LAB=1\nGATEWAY_PORT=9443\nADMIN_PORT=9444\nMETRICS_PORT=9464\nAPI_PORT=8443\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/vpn/generate.sh");
    sh(&[
        "bash",
        script.to_str().unwrap(),
        plan.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    let keys = std::fs::metadata(out_dir.join("keys/cloud.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&keys.permissions()) & 0o077,
        0,
        "private keys are private"
    );
    // The generated WireGuard files parse (wg-quick strips its own keys, wg would refuse a bad line).
    for conf in [
        "cloud/wg0.conf",
        "central/wg1.conf",
        "labs/LAB1/wg0.conf",
        "labs/LAB1/wg1.conf",
        "labs/LAB1/tablets/tablet-1.conf",
    ] {
        sh(&["wg-quick", "strip", out_dir.join(conf).to_str().unwrap()]);
    }
    let lab_conf = std::fs::read_to_string(out_dir.join("labs/LAB1/wg0.conf")).unwrap();
    assert!(
        !lab_conf.contains("10.32.0.0/24"),
        "no route to another lab through the cloud"
    );

    let mut net = Topology {
        id: format!("{}", std::process::id() % 100_000),
        listeners: Vec::new(),
    };
    for name in ["router", "cloud", "central", "lab1", "lab2", "tablet", "monitor"] {
        sh(&["ip", "netns", "add", &net.ns(name)]);
        net.exec(name, &["ip", "link", "set", "lo", "up"]);
    }
    net.link("router", "10.10.0.1/24", "cloud", "10.10.0.10/24");
    net.link("router", "10.20.0.1/24", "central", "10.20.0.10/24");
    net.link("router", "10.31.0.1/24", "lab1", "10.31.0.10/24");
    net.link("router", "10.32.0.1/24", "lab2", "10.32.0.10/24");
    net.link("lab1", "10.8.1.1/24", "tablet", "10.8.1.2/24");
    net.link("router", "10.200.0.1/24", "monitor", "10.200.0.10/24");
    for (name, via) in [
        ("cloud", "10.10.0.1"),
        ("central", "10.20.0.1"),
        ("lab1", "10.31.0.1"),
        ("lab2", "10.32.0.1"),
        ("tablet", "10.8.1.1"),
        ("monitor", "10.200.0.1"),
    ] {
        net.exec(name, &["ip", "route", "add", "default", "via", via]);
    }
    // The router knows the way to the tablets, so that only the rules can stop them.
    net.exec("router", &["ip", "route", "add", "10.8.1.0/24", "via", "10.31.0.10"]);
    for forwarding in ["router", "lab1"] {
        net.exec(forwarding, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    }
    net.listen("cloud", 8443);
    net.listen("cloud", 5432);
    net.listen("central", 8443);
    net.listen("lab2", 9443);
    net.listen("lab1", 9443);
    net.listen("lab1", 2222);
    net.listen("lab1", 9444);
    net.listen("lab1", 9464);
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Without the rules everything is routed: what follows is the rules' doing, not the routing's.
    assert!(
        net.reaches("lab1", "10.32.0.10", 9443),
        "control: lab1 reaches lab2 before the rules"
    );
    assert!(
        net.reaches("tablet", "10.10.0.10", 8443),
        "control: a tablet is routed to the cloud before the rules"
    );

    net.exec("router", &["nft", "-f", out_dir.join("sdwan.nft").to_str().unwrap()]);
    net.exec(
        "lab1",
        &["nft", "-f", out_dir.join("labs/LAB1/labedge.nft").to_str().unwrap()],
    );

    assert!(net.reaches("lab1", "10.10.0.10", 8443), "a lab reaches the cloud's API");
    assert!(
        net.reaches("lab1", "10.20.0.10", 8443),
        "a lab reaches the central lab's API (backup)"
    );
    assert!(net.reaches("lab2", "10.10.0.10", 8443), "the other lab too");
    assert!(
        !net.reaches("lab1", "10.32.0.10", 9443),
        "a lab never reaches another lab"
    );
    assert!(!net.reaches("lab2", "10.31.0.10", 9443), "in either direction");
    assert!(
        !net.reaches("lab1", "10.10.0.10", 5432),
        "a lab reaches the API only, not the cloud's database"
    );
    assert!(
        net.reaches("central", "10.10.0.10", 5432),
        "the central standby replicates from the cloud"
    );
    assert!(net.reaches("tablet", "10.8.1.1", 9443), "a tablet reaches its gateway");
    assert!(
        !net.reaches("tablet", "10.8.1.1", 2222),
        "only the gateway's tablet port"
    );
    assert!(
        !net.reaches("tablet", "10.10.0.10", 8443),
        "a tablet reaches nothing beyond its gateway"
    );
    // The console and the metrics have ports of their own, each for its own network.
    assert!(!net.reaches("tablet", "10.8.1.1", 9444), "no console from a tablet");
    assert!(!net.reaches("tablet", "10.8.1.1", 9464), "no metrics from a tablet");
    assert!(
        net.reaches("router", "10.31.0.10", 9444),
        "the console from the lab's LAN"
    );
    assert!(
        net.reaches("monitor", "10.31.0.10", 9464),
        "supervision scrapes the metrics port"
    );
    assert!(!net.reaches("monitor", "10.31.0.10", 9444), "and not the console");
    assert!(!net.reaches("monitor", "10.31.0.10", 9443), "nor the tablet port");
    assert!(
        !net.reaches("lab2", "10.31.0.10", 9464),
        "another lab reaches no metrics"
    );
}
