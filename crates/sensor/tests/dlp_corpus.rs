//! DLP over `dlp/sample.tsv`: per-class recall and benign false positives.

mod common;

use bulkhead_sensor::dlp::{DlpKind, DlpScanner};
use std::collections::BTreeMap;

#[test]
fn dlp_sample_recall_and_false_positives() {
    let Some(root) = common::corpora() else {
        return;
    };
    let scanner = DlpScanner::builtin();
    // label -> (n, found as that class, any finding)
    let mut stats: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for r in common::rows(&root, "dlp/sample.tsv") {
        let found = scanner.scan_decoded(&r.payload);
        let e = stats.entry(r.label.clone()).or_default();
        e.0 += 1;
        if found.iter().any(|f| f.kind == r.label) {
            e.1 += 1;
        } else if r.label != "benign" {
            eprintln!("MISS {}: {}", r.label, String::from_utf8_lossy(&r.payload));
        }
        if !found.is_empty() {
            e.2 += 1;
            if r.label == "benign" {
                eprintln!("FP {:?}: {}", found, String::from_utf8_lossy(&r.payload));
            }
        }
    }
    for (label, (n, hit, any)) in &stats {
        println!(
            "dlp/sample.tsv {label:15} n={n:4} recall={:6.2}% flagged={any}",
            100.0 * *hit as f64 / *n as f64
        );
    }
    for k in DlpKind::ALL {
        let (n, hit, _) = stats[k.as_str()];
        assert!(hit * 100 >= n * 99, "{}: {hit}/{n}", k.as_str());
    }
    assert_eq!(stats["benign"].2, 0, "benign rows flagged");
}
