//! Development aid: time `Sensor::http_request` parts on one browser-like request.
use bulkhead_sensor::{Attack, DlpKind, Sensor, SensorSpec};
fn main() {
    let head = b"GET /shop/items/7?p0=red+shoes&p1=c%2F+caridad+s%2Fn&p2=42 HTTP/1.1\r\nHost: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\nReferer: https://shop.example.com/shop/items?page=7\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; cart=3\r\nConnection: keep-alive\r\n\r\n";
    let n = 20000;
    let stripped: Vec<u8> = String::from_utf8_lossy(head)
        .lines()
        .filter(|l| !l.starts_with("User-Agent") && !l.starts_with("Referer"))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    let head: &[u8] = if std::env::args().nth(1).is_some() {
        &stripped
    } else {
        head
    };
    for (name, attacks, dlp) in [
        ("none", vec![], vec![]),
        ("dlp", vec![], DlpKind::ALL.to_vec()),
        ("sqli", vec![Attack::Sqli], vec![]),
        ("xss", vec![Attack::Xss], vec![]),
        ("cmdi", vec![Attack::Cmdi], vec![]),
        ("path", vec![Attack::PathTraversal], vec![]),
        ("all", Attack::ALL.to_vec(), DlpKind::ALL.to_vec()),
    ] {
        let s = Sensor::new(&SensorSpec {
            name: "x".into(),
            block: true,
            attacks,
            dlp,
            patterns: vec![],
        })
        .unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(s.http_request(std::hint::black_box(head), b""));
        }
        let e = t.elapsed();
        println!(
            "{name:6} {:.2} us/req {:.1} MB/s",
            e.as_secs_f64() * 1e6 / n as f64,
            (head.len() * n) as f64 / e.as_secs_f64() / 1e6
        );
    }
}
