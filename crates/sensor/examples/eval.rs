//! Development aid: `cargo run --example eval -- FILE LABEL` prints misses/FPs of sqli.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && i + 2 < b.len() + 1
            && let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&b[i + 1..(i + 3).min(b.len())]).unwrap_or("zz"),
                16,
            )
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "one" {
        use bulkhead_sensor::sqli::*;
        for (q, st) in [
            (None, lex::Start::Code),
            (Some(b'\''), lex::Start::InString(b'\'')),
            (Some(b'"'), lex::Start::InString(b'"')),
        ] {
            let t = lex::lex(args[2].as_bytes(), st);
            let w = judge::walk(args[2].as_bytes(), &t, q);
            println!(
                "{:?} {} {:?} {:?}",
                q.map(|c| c as char),
                fingerprint(&t),
                w,
                judge::signal_names(w.signals)
            );
        }
        println!("{:?}", detect(args[2].as_bytes()));
        return;
    }
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let (mut tp, mut fnn, mut fp, mut tn) = (0, 0, 0, 0);
    for line in text.lines().skip(1) {
        let mut f = line.split('\t');
        let (label, payload) = (f.next().unwrap(), f.next().unwrap_or(""));
        let v = unescape(payload);
        let src = f.next().unwrap_or("");
        let loc = src.rsplit(':').next().unwrap_or("");
        let parts: Vec<Vec<u8>> = if loc == "QUERY" || loc == "BODY" {
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
            vec![v.clone()]
        };
        let hit = parts.iter().find_map(|p| bulkhead_sensor::sqli::detect(p));
        if label == args[2] {
            if hit.is_some() {
                tp += 1
            } else {
                fnn += 1;
                if args.get(3).map(|s| s.as_str()) == Some("miss") {
                    println!("MISS {}", String::from_utf8_lossy(&v));
                }
            }
        } else if label == "benign" {
            if let Some(h) = hit {
                fp += 1;
                if args.get(3).map(|s| s.as_str()) == Some("fp") {
                    println!(
                        "FP {} {:?} {:?} {}",
                        String::from_utf8_lossy(&v),
                        h.context,
                        h.signals,
                        h.fingerprint
                    );
                }
            } else {
                tn += 1
            }
        }
    }
    println!(
        "detected {tp}/{} = {:.2}%  benign flagged {fp}/{} = {:.2}%",
        tp + fnn,
        100.0 * tp as f64 / (tp + fnn) as f64,
        fp + tn,
        100.0 * fp as f64 / (fp + tn).max(1) as f64
    );
}
