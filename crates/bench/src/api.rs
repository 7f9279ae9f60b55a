//! API latency under load: `bulkhead serve` (the release binary) over the example policy
//! and a store of a million flow records, asked by N concurrent clients (one thread and
//! one keep-alive connection each) for a fixed time; p50/p99 per request kind, over
//! plain HTTP on loopback and over TLS.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct Options {
    pub records: u32,
    pub clients: Vec<usize>,
    pub seconds: f64,
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `count` flow records between the example's workloads, one a millisecond.
fn fill(store: &Path, count: u32) -> Result<()> {
    let pods = [
        ("eu", "credit-check-0", "orderInput"),
        ("us", "credit-status-1", "custRecord"),
        ("eu", "order-web-0", "orderInput"),
        ("us", "geo-map-0", "geoLocation"),
    ];
    let mut s = bulkhead_store::Store::open(store)?;
    let t0: u64 = 1_796_000_000_000;
    let mut batch = Vec::with_capacity(4096);
    for i in 0..count {
        let (sn, sname, sapp) = pods[i as usize % 4];
        let (dn, dname, dapp) = pods[(i as usize / 4 + 1) % 4];
        let ms = t0 + u64::from(i);
        let time =
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms))
                .to_string();
        let r: bulkhead_record::FlowRecord = serde_json::from_value(serde_json::json!({
            "time": time, "event": "new", "verdict": if i % 5 == 0 { "deny" } else { "allow" },
            "protocol": "TCP", "sport": 30000 + (i % 30000), "dport": 8080,
            "src": {"ip": "10.1.0.1", "workload": format!("{sn}/{sname}"), "namespace": sn, "name": sname, "labels": {"app": sapp}},
            "dst": {"ip": "10.1.0.2", "workload": format!("{dn}/{dname}"), "namespace": dn, "name": dname, "labels": {"app": dapp}},
            "decided_by": {"side": "ingress", "tier": "mode", "mode": "Protect", "group": "cust-record"},
            "generation": 1
        }))?;
        batch.push(r);
        if batch.len() == 4096 {
            s.write_flows(&batch)?;
            batch.clear();
        }
    }
    s.write_flows(&batch)?;
    s.commit_conversations()?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

struct Row {
    what: &'static str,
    transport: &'static str,
    clients: usize,
    requests: usize,
    per_second: f64,
    p50: f64,
    p99: f64,
}

/// `clients` threads asking `url` for `seconds`; every answer must be 200.
fn load(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    clients: usize,
    seconds: f64,
) -> Result<(Vec<Duration>, f64)> {
    let auth = format!("Bearer {token}");
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let agent = agent.clone();
            let url = url.to_string();
            let auth = auth.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut lat = Vec::new();
                while Instant::now() < stop {
                    let t = Instant::now();
                    let mut r = agent.get(&url).header("Authorization", &auth).call()?;
                    let body = r.body_mut().with_config().limit(1 << 28).read_to_vec()?;
                    lat.push(t.elapsed());
                    if r.status() != 200 || body.is_empty() {
                        bail!("{url}: {}", r.status());
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    Ok((all, elapsed))
}

pub fn run(bulkhead: &Path, o: &Options) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("bulkhead-bench-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("node-1");
    std::fs::create_dir_all(&state)?;
    let t = Instant::now();
    fill(&state.join(bulkhead_store::FILE), o.records)?;
    eprintln!(
        "store: {} records in {:.1} s",
        o.records,
        t.elapsed().as_secs_f64()
    );
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    std::fs::write(dir.join("cert.pem"), ck.cert.pem())?;
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem())?;
    let token = "bench-token";
    std::fs::write(dir.join("token"), token)?;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut rows = Vec::new();
    for (transport, tls) in [("http", false), ("https", true)] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(bulkhead);
        cmd.arg("serve")
            .arg("--state")
            .arg(&state)
            .arg("-f")
            .arg(&examples)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(dir.join("token"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if tls {
            cmd.arg("--tls-cert")
                .arg(dir.join("cert.pem"))
                .arg("--tls-key")
                .arg(dir.join("key.pem"));
        }
        let _served = Served(cmd.spawn().context("bulkhead serve")?);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t.elapsed() > Duration::from_secs(20) {
                bail!("bulkhead serve did not listen");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections_per_host(256);
        if tls {
            cfg = cfg.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![
                        ureq::tls::Certificate::from_der(ck.cert.der()).to_owned(),
                    ])))
                    .build(),
            );
        }
        let agent: ureq::Agent = cfg.build().into();
        let base = format!("{transport}://127.0.0.1:{port}");
        let kinds: [(&'static str, String); 3] = [
            (
                "GET /api/v1/flows?limit=100",
                format!("{base}/api/v1/flows?limit=100"),
            ),
            (
                "GET /api/v1/flows?limit=100&workload=eu/order-web-0",
                format!("{base}/api/v1/flows?limit=100&workload=eu/order-web-0"),
            ),
            (
                "GET /api/v1/explain (eu/credit-check-0 -> us/credit-status-1 TCP/8080)",
                format!(
                    "{base}/api/v1/explain?src=eu/credit-check-0&dst=us/credit-status-1&service=TCP/8080"
                ),
            ),
        ];
        for (what, url) in &kinds {
            // Warm up: the first explain compiles the policy, the first query warms the cache.
            load(&agent, url, token, 1, 0.5)?;
            for &clients in &o.clients {
                let (lat, secs) = load(&agent, url, token, clients, o.seconds)?;
                rows.push(Row {
                    what,
                    transport,
                    clients,
                    requests: lat.len(),
                    per_second: lat.len() as f64 / secs,
                    p50: percentile(&lat, 0.50),
                    p99: percentile(&lat, 0.99),
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = format!(
        "{} flow records in the store; {} s per row; one keep-alive connection per client\n\n",
        o.records, o.seconds
    );
    out.push_str("| request | transport | clients | requests | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} |\n",
            r.what, r.transport, r.clients, r.requests, r.per_second, r.p50, r.p99
        ));
    }
    Ok(out)
}
