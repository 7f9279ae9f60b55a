//! Development aid: DLP scan speed over the DLP sample's benign rows (repeated to 4 MiB).
fn main() {
    let text = std::fs::read_to_string("/work/shared/corpora/dlp/sample.tsv").unwrap();
    let mut body = Vec::new();
    while body.len() < 4 << 20 {
        for l in text.lines().skip(1).filter(|l| l.starts_with("benign")) {
            body.extend(bulkhead_sensor::decode::percent_decode(
                l.split('\t').nth(1).unwrap().as_bytes(),
            ));
            body.push(b'\n');
        }
    }
    for k in bulkhead_sensor::DlpKind::ALL {
        let s = bulkhead_sensor::dlp::DlpScanner::new(&[k], &[]).unwrap();
        let t = std::time::Instant::now();
        let n = s.scan(&body).len();
        println!(
            "{:15} {n} {:.1} MB/s",
            k.as_str(),
            body.len() as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    }
    let s = bulkhead_sensor::dlp::DlpScanner::builtin();
    let t = std::time::Instant::now();
    let n = s.scan(&body).len();
    println!(
        "all {n} {:.1} MB/s",
        body.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}
