//! Shared by the session tests.

/// `data` cut into pieces of the sizes in `cuts` (the rest in one piece).
pub fn pieces(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let (mut at, mut k) = (0, 0);
    while at < data.len() {
        let n = cuts.get(k).copied().unwrap_or(data.len()).max(1);
        let n = n.min(data.len() - at);
        v.push(data[at..at + n].to_vec());
        at += n;
        k += 1;
    }
    v
}
