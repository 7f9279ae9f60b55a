//! Development aid: `cargo run --release --example score -- FILE [miss LABEL | fp DETECTOR]`
//! scores every attack detector on an attacks/*.tsv file (CRS rows split into arguments
//! ModSecurity-style, as the corpora README says libinjection was scored).
use bulkhead_sensor::{Attack, attack, decode::percent_decode};

fn parts(v: &[u8], src: &str) -> Vec<Vec<u8>> {
    let loc = src.rsplit(':').next().unwrap_or("");
    if loc == "QUERY" || loc == "BODY" {
        v.split(|&b| b == b'&')
            .flat_map(|kv| {
                let mut it = kv.splitn(2, |&b| b == b'=');
                let k = it.next().unwrap_or(b"").to_vec();
                match it.next() {
                    Some(val) => vec![k, val.to_vec()],
                    None => vec![k],
                }
            })
            .collect()
    } else {
        vec![v.to_vec()]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let mode = args.get(2).map(String::as_str).unwrap_or("");
    let arg = args.get(3).map(String::as_str).unwrap_or("");
    let mut stats: std::collections::BTreeMap<String, [usize; 6]> = Default::default();
    for line in text.lines().skip(1) {
        let mut f = line.split('\t');
        let (label, payload, src) = (
            f.next().unwrap(),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        let v = percent_decode(payload.as_bytes());
        let ps = parts(&v, src);
        let e = stats.entry(label.to_string()).or_default();
        e[0] += 1;
        for (i, a) in Attack::ALL.iter().enumerate() {
            let hit = ps.iter().find_map(|p| attack::detect(*a, p));
            if let Some(h) = &hit {
                e[i + 1] += 1;
                if mode == "fp" && label == "benign" && a.as_str() == arg {
                    println!("FP {:?} {}", h.reason, String::from_utf8_lossy(&v));
                }
            } else if mode == "miss" && label == arg && a.as_str() == arg {
                println!("MISS {}", String::from_utf8_lossy(&v));
            }
        }
        if Attack::ALL
            .iter()
            .any(|a| ps.iter().any(|p| attack::detect(*a, p).is_some()))
        {
            e[5] += 1;
        }
    }
    println!(
        "{:16} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "label", "n", "sqli", "xss", "cmdi", "path", "any"
    );
    for (l, s) in stats {
        print!("{l:16} {:6}", s[0]);
        for k in 1..6 {
            print!(" {:6.2}%", 100.0 * s[k] as f64 / s[0] as f64);
        }
        println!();
    }
}
