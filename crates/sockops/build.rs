//! Compiles the BPF programs with Debian's clang (`apt-get install clang libbpf-dev`):
//! Rust's stable compiler has no BPF target, and libbpf-rs loads the object at run time.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("redis.bpf.o");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    // <asm/types.h> lives under the target's multiarch directory on Debian.
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    println!("cargo:rerun-if-changed=bpf/redis.bpf.c");
    let status = Command::new("clang")
        .args([
            "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I", &multiarch, "-c",
        ])
        .arg("bpf/redis.bpf.c")
        .arg("-o")
        .arg(&out)
        .status()
        .expect("running clang (Debian: apt-get install clang libbpf-dev)");
    assert!(status.success(), "clang failed on bpf/redis.bpf.c");
}
