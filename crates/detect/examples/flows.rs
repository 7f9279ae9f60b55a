//! Print each flow of a capture with the first bytes of each direction (debugging aid).
fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: flows FILE [CLIENT-PORT]");
    let port = std::env::args().nth(2);
    let bytes = std::fs::read(&path).expect("read");
    for f in bulkhead_detect::capture::detect_capture(&bytes).expect("parse") {
        if port
            .as_ref()
            .is_none_or(|p| f.src.ends_with(&format!(":{p}")))
        {
            println!(
                "{} {} -> {} {} {:?}",
                f.l4, f.src, f.dst, f.protocol, f.detail
            );
        }
    }
}
