//! Response rules end to end, in a real lab with the real agent: a workload that tries
//! to reach the database (a Protect group that only the web tier may reach) is denied by
//! the kernel, and the `lateral-move` rule then
//! - POSTs the alert to a webhook receiver (a real HTTP server in the node's namespace,
//!   where the agent runs) with the configured header,
//! - sends an RFC 5424 message to a syslog receiver (UDP),
//! - quarantines the workload: a connection it could open before (to an open site) now
//!   fails; `bulkhead quarantine release` lets it talk again,
//! - captures its packets into a pcap file that tshark reads.
//!
//! Root only (network namespaces, nftables).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, bulkhead};

const LAB: &str = "respondtest";
const FIXTURE: &str = "crates/cli/tests/fixtures/respond/";

/// A webhook (TCP 18080) and syslog (UDP 15514) receiver on the node's loopback, each
/// request body or datagram one line of `out`.
const RECEIVER: &str = r#"
import http.server, socket, sys, threading
out = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode()
        out.write("webhook " + self.path + " " + self.headers.get("Authorization", "-") + " " + body.replace("\n", " ") + "\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
def syslog():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 15514))
    while True:
        out.write("syslog " + s.recv(65535).decode().replace("\n", " ") + "\n")
threading.Thread(target=syslog, daemon=True).start()
http.server.HTTPServer(("127.0.0.1", 18080), H).serve_forever()
"#;

struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Can `from` open a TCP connection to `ip:port` (within 2 s)?
fn connects(lab: &Lab, from: &str, ip: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{ip}/{port}");
    lab.run(from, &["timeout", "2", "bash", "-c", &script]).0
}

/// Poll `f` until it gives Some, for up to `secs`.
fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for agent in std::fs::read_dir(dir.join("agents"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = agent.path().join("captures");
        for f in std::fs::read_dir(d).into_iter().flatten().flatten() {
            out.push(f.path());
        }
    }
    out
}

#[test]
fn a_lateral_move_is_reported_quarantined_and_captured() {
    if !common::privileged("the response rules test") {
        return;
    }
    common::lab::require(&["python3", "tshark", "tcpdump", "bash"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &[FIXTURE], &[]);
    let state = bulkhead_lab::load(LAB).expect("lab state");
    let node_ns = state.plan.nodes[0].netns.clone();
    let received = tempfile::NamedTempFile::new().unwrap();
    let _rx = Receiver(
        Command::new("ip")
            .args(["netns", "exec", &node_ns, "python3", "-c", RECEIVER])
            .arg(received.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("the receiver"),
    );
    let read = || std::fs::read_to_string(received.path()).unwrap_or_default();
    let (db, site) = (lab.ipv4("shop/db-0"), lab.ipv4("public/site-0"));

    // Before: the debug pod reaches the open site; the web tier reaches the database.
    assert!(
        wait_for(10, || connects(&lab, "shop/debug-0", &site, 80)
            .then_some(()))
        .is_some(),
        "shop/debug-0 -> public/site-0:80 must work before any quarantine"
    );
    assert!(
        connects(&lab, "shop/web-0", &db, 5432),
        "web -> db is allowed"
    );
    assert!(
        read().is_empty(),
        "an allowed connection alerts nobody: {}",
        read()
    );

    // The lateral move.
    assert!(
        !connects(&lab, "shop/debug-0", &db, 5432),
        "debug -> db is denied"
    );

    let hook = wait_for(10, || {
        read()
            .lines()
            .find(|l| l.starts_with("webhook "))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no webhook delivery: {}", read()));
    assert!(
        hook.starts_with("webhook /hooks/bulkhead Bearer test-token {"),
        "{hook}"
    );
    let body: serde_json::Value =
        serde_json::from_str(hook.splitn(5, ' ').nth(4).unwrap()).expect("a JSON body");
    assert_eq!(body["rule"], "lateral-move", "{body}");
    assert_eq!(body["type"], "deny", "{body}");
    assert_eq!(body["src"]["workload"], "shop/debug-0", "{body}");
    assert_eq!(body["dst"]["workload"], "shop/db-0", "{body}");
    assert_eq!(body["dst"]["port"], 5432, "{body}");

    let syslog = wait_for(10, || {
        read()
            .lines()
            .find(|l| l.starts_with("syslog "))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no syslog message: {}", read()));
    // local3 (19) * 8 + warning (4) = 156.
    assert!(syslog.starts_with("syslog <156>1 "), "{syslog}");
    assert!(
        syslog.contains("[bulkhead@32473 rule=\"lateral-move\" type=\"deny\""),
        "{syslog}"
    );

    // Quarantined: listed, and cut off from what it could reach before.
    let listed = wait_for(10, || {
        let o = bulkhead(&["quarantine", "list", "--lab", LAB, "-o", "json"]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.contains("shop/debug-0").then_some(text)
    })
    .expect("shop/debug-0 is quarantined");
    assert!(listed.contains("lateral-move"), "{listed}");
    let o = bulkhead(&["quarantine", "list", "--lab", LAB, "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&o.stdout);
    assert!(yaml.contains("workload: shop/debug-0\n"), "{yaml}");
    assert!(
        wait_for(5, || (!connects(&lab, "shop/debug-0", &site, 80))
            .then_some(()))
        .is_some(),
        "a quarantined workload reaches nothing"
    );

    // The capture: a pcap tshark reads.
    let dir = bulkhead_lab::names::lab_dir(LAB);
    let pcap = wait_for(15, || captures(&dir).into_iter().next())
        .unwrap_or_else(|| panic!("no capture under {}", dir.display()));
    // The capture ends after its 5 s (tcpdump flushes and closes the file).
    std::thread::sleep(Duration::from_secs(6));
    let t = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "tshark -r {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&t.stderr)
    );
    // The attempts to reach the site while quarantined were captured.
    let packets = String::from_utf8_lossy(&t.stdout);
    assert!(packets.contains(&site), "{}: {packets}", pcap.display());

    // Released: policy decides again.
    let o = bulkhead(&["quarantine", "release", "shop/debug-0", "--lab", LAB]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        wait_for(5, || connects(&lab, "shop/debug-0", &site, 80)
            .then_some(()))
        .is_some(),
        "a released workload talks again"
    );
    let status = std::fs::read_to_string(
        captures(&dir)[0]
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("status.json"),
    )
    .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["responses"]["delivered"].as_u64() >= Some(2),
        "webhook and syslog delivered: {status}"
    );
}
