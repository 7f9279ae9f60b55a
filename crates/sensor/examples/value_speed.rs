//! Development aid: time each attack detector on a few typical values.
use bulkhead_sensor::{Attack, Sensor, SensorSpec};
fn main() {
    let vals: &[&[u8]] = &[
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        b"https://shop.example.com/shop/items?page=7",
        b"/shop/items/7",
        b"c/ caridad s/n",
        b"arenas de san juan",
    ];
    let n = 20000;
    for v in vals {
        for a in Attack::ALL {
            let s = Sensor::new(&SensorSpec {
                name: "x".into(),
                block: true,
                attacks: vec![a],
                dlp: vec![],
                patterns: vec![],
            })
            .unwrap();
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(s.value("v", std::hint::black_box(v)));
            }
            print!("{a} {:.0}ns  ", t.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        println!("{}", String::from_utf8_lossy(v));
    }
}
