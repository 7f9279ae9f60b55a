//! SQL on the wire (`Sensor::sql`, what the PostgreSQL and MySQL proxies inspect): the
//! statements a deliberately injectable app built from what sqlmap sent it
//! (`heldout/sqlmap.tsv`, the app's own query templates, `heldout/vulnapp.py`), and
//! every statement of the SQL scripts Debian's PostgreSQL and MariaDB packages ship
//! (extension scripts, system tables, the sys schema), which no injection wrote.

mod common;

use bulkhead_sensor::{Attack, Sensor, SensorSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn sensor() -> Sensor {
    Sensor::new(&SensorSpec {
        name: "wire".into(),
        block: false,
        attacks: vec![Attack::Sqli],
        dlp: vec![],
        patterns: vec![],
    })
    .unwrap()
}

/// The statement vulnapp.py runs for a value sent to `run`'s endpoint, if the value
/// goes into one (sqlmap also sends parameters the app ignores).
fn statement(run: &str, location: &str, name: &str, v: &str) -> Option<String> {
    let endpoint = run.split('_').next().unwrap_or(run);
    match (endpoint, location, name) {
        ("item", "query", "id") => Some(format!("SELECT id, name, price FROM items WHERE id={v}")),
        ("find", "query", "q") => Some(format!(
            "SELECT id, name FROM items WHERE name LIKE '%{v}%'"
        )),
        ("search", "form", "name") => Some(format!(
            "SELECT id, name, price FROM items WHERE name='{v}'"
        )),
        _ => None,
    }
}

#[test]
fn sqlmap_statements_on_the_wire() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/heldout");
    let s = sensor();
    // (endpoint, label) -> (statements, flagged)
    let mut stats: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for r in common::rows(&dir, "sqlmap.tsv") {
        // `sqlmap:RUN:LOCATION:NAME`
        let f: Vec<&str> = r.source.split(':').collect();
        let v = String::from_utf8_lossy(&r.payload);
        let Some(q) = statement(f[1], f[2], f[3], &v) else {
            continue;
        };
        let endpoint = f[1].split('_').next().unwrap_or("").to_string();
        let e = stats.entry((endpoint, r.label)).or_default();
        e.0 += 1;
        e.1 += usize::from(!s.sql(q.as_bytes()).is_empty());
    }
    for ((endpoint, label), (n, hit)) in &stats {
        println!("{endpoint:8} {label:6} {hit:4}/{n:4}");
    }
    // Measured 2026-12-04 (before the constant-comparison and subquery-substring marks:
    // 13/828, 4/62, 211/788); 2026-12-07 751/828, 29/62, 293/788 (728, 22, 264 before the
    // encoded-string, cut-off-rest, broken-string, system-access and stacked marks). Many of sqlmap's string
    // payloads never leave the string they were put in (the wrong quote for this app):
    // nothing happened to flag.
    for (endpoint, floor) in [("item", 0.90), ("find", 0.45), ("search", 0.36)] {
        let (n, hit) = stats[&(endpoint.to_string(), "sqli".to_string())];
        assert!(hit as f64 >= floor * n as f64, "{endpoint}: {hit}/{n}");
        let (_, fp) = stats[&(endpoint.to_string(), "probe".to_string())];
        assert_eq!(fp, 0, "{endpoint} probes");
    }
}

/// `;`-separated statements outside quotes and comments.
fn statements(sql: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let end = |from: usize, pat: &[u8]| {
            (from..b.len())
                .find(|&j| b[j..].starts_with(pat))
                .map_or(b.len(), |j| j + pat.len())
        };
        let j = match c {
            b'\'' | b'"' | b'`' => end(i + 1, &[c]),
            b'-' if b[i..].starts_with(b"--") => end(i, b"\n"),
            b'/' if b[i..].starts_with(b"/*") => end(i + 2, b"*/"),
            b'$' if b[i..].starts_with(b"$$") => end(i + 2, b"$$"),
            b';' => {
                out.push(std::mem::take(&mut cur));
                i += 1;
                continue;
            }
            _ => i + 1,
        };
        cur.push_str(&String::from_utf8_lossy(&b[i..j]));
        i = j;
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn sql_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "sql") {
            out.push(p);
        }
    }
}

#[test]
fn debian_sql_scripts_are_clean() {
    let mut files = Vec::new();
    for v in std::fs::read_dir("/usr/share/postgresql")
        .into_iter()
        .flatten()
        .flatten()
    {
        sql_files(&v.path().join("extension"), &mut files);
    }
    sql_files(Path::new("/usr/share/mysql"), &mut files);
    if files.is_empty() {
        assert!(
            std::env::var("BULKHEAD_REQUIRE_CORPORA").as_deref() != Ok("1"),
            "no SQL scripts under /usr/share/postgresql/*/extension or /usr/share/mysql \
             (apt-get install postgresql mariadb-server)"
        );
        eprintln!("skipped: no PostgreSQL or MariaDB SQL scripts installed");
        return;
    }
    let s = sensor();
    let (mut n, mut flagged) = (0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for st in statements(&text) {
            n += 1;
            let found = s.sql(st.as_bytes());
            if !found.is_empty() {
                flagged.push(format!("{}: {}", f.display(), &st[..st.len().min(200)]));
            }
        }
    }
    println!(
        "{} files, {n} statements, {} flagged",
        files.len(),
        flagged.len()
    );
    assert!(n > 5000, "{n} statements");
    assert!(flagged.is_empty(), "{flagged:#?}");
}
