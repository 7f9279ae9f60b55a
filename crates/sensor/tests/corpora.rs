//! Accuracy on the shared attack corpora, through the public API (`Sensor::value`, one
//! sensor per class), scored as the corpora README scores libinjection: per parameter
//! value, CRS rows split into argument names and values ModSecurity-style.
//!
//! The asserted floors sit slightly below what was measured (docs/BENCHMARKS.md,
//! "Sensors"), so a regression fails while the numbers stay honest.

mod common;

use bulkhead_sensor::{Attack, Sensor, SensorSpec};
use std::collections::BTreeMap;

fn sensor(a: Attack) -> Sensor {
    Sensor::new(&SensorSpec {
        name: a.as_str().into(),
        block: false,
        attacks: vec![a],
        dlp: vec![],
        patterns: vec![],
    })
    .unwrap()
}

/// The values a WAF would inspect for one row.
fn parts(r: &common::Row) -> Vec<Vec<u8>> {
    let loc = r.source.rsplit(':').next().unwrap_or("");
    if loc == "QUERY" || loc == "BODY" {
        let mut out = Vec::new();
        for kv in r.payload.split(|&b| b == b'&') {
            let mut it = kv.splitn(2, |&b| b == b'=');
            out.push(it.next().unwrap_or(b"").to_vec());
            if let Some(v) = it.next() {
                out.push(v.to_vec());
            }
        }
        out
    } else {
        vec![r.payload.clone()]
    }
}

/// label -> (rows, rows flagged) for one attack class over one file.
fn score(root: &std::path::Path, file: &str, a: Attack) -> BTreeMap<String, (usize, usize)> {
    let s = sensor(a);
    let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in common::rows(root, file) {
        let hit = parts(&r).iter().any(|p| !s.value("v", p).is_empty());
        let e = m.entry(r.label.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(hit);
    }
    m
}

fn pct(x: (usize, usize)) -> f64 {
    100.0 * x.1 as f64 / x.0.max(1) as f64
}

/// (file, class, minimum detection %, maximum benign false positives %)
const FLOORS: &[(&str, Attack, f64, f64)] = &[
    // libinjection: 99.87 % / 5.46 % FP; httpparams: 96.86 % / 0 %; CRS 942: 15.91 % / 4.42 %
    // (the corpora README). libinjection 3.10.0 on exactly these rows, in one run with
    // ours (crates/sensor/bench/libinjection.sh): 11,878 of 11,892 (99.88 %), 16 of 293
    // benign; CRS 942 92 of 612, 5 of 116 benign.
    ("attacks/libinjection.tsv", Attack::Sqli, 99.88, 5.46),
    ("attacks/httpparams.tsv", Attack::Sqli, 99.7, 0.0),
    ("attacks/crs_942_sqli.tsv", Attack::Sqli, 57.5, 4.42),
    // libinjection xss: 99.65 %; httpparams xss: 77.81 %. Ours 98.50 % -> 98.77 % with
    // XML external entities and `<?xml-stylesheet?>`; -> 99.38 % (httpparams 97.06 % ->
    // 97.59 %) with CSS escapes, data URLs judged by their content, IE data binding and
    // behaviour namespaces, XML Events listeners (nineteenth session).
    ("attacks/libinjection.tsv", Attack::Xss, 99.3, 0.5),
    ("attacks/httpparams.tsv", Attack::Xss, 97.5, 0.0),
    ("attacks/httpparams.tsv", Attack::Cmdi, 89.0, 0.0),
    // path traversal 82.52 % -> 96.12 % once a placeholder after a dot run or an empty
    // or `.` segment (`/aaaa....{file}`, `///{file}`) is a traversal template.
    ("attacks/httpparams.tsv", Attack::PathTraversal, 95.5, 0.0),
    // crs_932: 47.25 % / 10.09 % -> 48.24 % / 10.55 % once a line break separates
    // commands: the one row more flagged is `arg=%0Acat /etc/passwd;&...`, labelled
    // benign there (a test that another rule stays quiet), a command line all the same.
    // -> 51.37 % / 11.01 % with wrappers (`nohup sh -c whoami`), `/dev/tcp/` and bin
    // paths with path arguments: the one more is `exec 5<>/dev/tcp/8.8.8.8/80`, which
    // another row of the file labels an attack.
    // -> 70.20 % / 11.47 % with globs that spell system paths, shell variables as the
    // command, empty substitutions, batch FOR tails and IF comparisons, shellshock,
    // builtins (`alias a=b`) and more programs: the one more is `;ex -c:\!pwd`, vi's
    // ex running a shell command, labelled benign for one rule.
    // -> 70.98 % / 10.55 % once `(` or `{` after a word opens no subshell (`q=hello world
    // (test)`) and `true`/`false` alone before a line break are no command line
    // (`has_focus=false%0A`), both benign rows.
    // -> 76.67 % / 10.09 % with SMTP, IMAP and POP3 command lines after a CR LF (mail
    // command injection, CRS 932300-932321) and fork bombs; no benign row changed.
    // -> 77.45 % with program names spliced by quotes (`w'h'oami`) and spelt by brace
    // expansions inside a word (`c{a,oun}t`).
    ("attacks/crs_932_rce.tsv", Attack::Cmdi, 77.2, 10.6),
    // crs_930: 50.00 % -> 53.85 % with the NUL-stripped reading (docs/BENCHMARKS.md,
    // "Held-out payloads"); -> 76.92 % with AI assistants' configuration directories;
    // -> 88.46 % with more of them and Vite's `@id/__x00__` prefix.
    ("attacks/crs_930_lfi.tsv", Attack::PathTraversal, 88.0, 0.0),
];

#[test]
fn attack_detection_floors() {
    let Some(root) = common::corpora() else {
        return;
    };
    let mut failures = Vec::new();
    for &(file, a, min, max_fp) in FLOORS {
        let m = score(&root, file, a);
        let label = a.as_str();
        let det = pct(m[label]);
        let fp = m.get("benign").copied().map_or(0.0, pct);
        println!(
            "{file:28} {label:15} n={:6} detected={det:6.2}%  benign n={:5} flagged={fp:5.2}%",
            m[label].0,
            m.get("benign").map_or(0, |b| b.0)
        );
        if det < min || fp > max_fp {
            failures.push(format!(
                "{file} {label}: {det:.2}% (floor {min}), FP {fp:.2}% (max {max_fp})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
