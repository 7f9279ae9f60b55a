//! Prints the random scenario for a seed, e.g. to replay a failing differential test:
//! `cargo run -p bulkhead-conformance --example show_random -- 42`

fn main() {
    let seed: u64 = match std::env::args().nth(1).map(|arg| arg.parse()) {
        None => 0,
        Some(Ok(seed)) => seed,
        Some(Err(_)) => {
            eprintln!("usage: show_random [SEED]   (SEED is an unsigned integer)");
            std::process::exit(2);
        }
    };
    let (namespaces, pods, policies) = bulkhead_conformance::random_scenario(seed);
    println!("# namespaces.yaml\n{namespaces}\n# pods.yaml\n{pods}\n# policies.yaml\n{policies}");
}
