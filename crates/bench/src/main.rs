//! `bulkhead-bench`: the data-plane benchmarks of docs/BENCHMARKS.md, on real network
//! namespaces (root). `bulkhead-bench dataplane [--quick]` prints Markdown tables;
//! `crr-server` / `crr-client` are the connection-rate endpoints it runs inside the lab.

mod api;
mod crr;
mod dns;
mod http;
mod l7;
mod lab;
mod latency;
mod objects;
mod throughput;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

const USAGE: &str = "usage: bulkhead-bench dataplane [objects|throughput|latency] [--quick] | api [--quick] | l7 [--quick] [--between-nodes] | dns [--quick] [--seconds S] | http [--quick] [--seconds S] [--busy-poll DURATION] | http-client --target IP:P... [--path P] [--rate R] [--seconds S] | crr-server --port P | crr-client --target IP:P [--seconds S] [--threads T]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // A benchmark takes minutes and builds labs: asking for help must not start one.
    if args.iter().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    match args.get(1).map(String::as_str) {
        Some("crr-server") => crr::server(arg(&args, "--port").context("--port")?.parse()?),
        Some("crr-client") => {
            let rate = crr::client(
                arg(&args, "--target").context("--target")?.parse()?,
                arg(&args, "--seconds").unwrap_or("5").parse()?,
                arg(&args, "--threads").unwrap_or("2").parse()?,
            )?;
            println!("{rate:.1}");
            Ok(())
        }
        Some("http-client") => {
            let targets = args
                .iter()
                .enumerate()
                .filter(|(_, a)| *a == "--target")
                .filter_map(|(i, _)| args.get(i + 1))
                .map(|t| t.parse())
                .collect::<Result<Vec<_>, _>>()?;
            for (p50, p99, n) in http::client(
                &targets,
                arg(&args, "--path").unwrap_or("/"),
                arg(&args, "--rate").unwrap_or("1000").parse()?,
                arg(&args, "--seconds").unwrap_or("5").parse()?,
            )? {
                println!("{p50:.1} {p99:.1} {n}");
            }
            Ok(())
        }
        Some("dataplane") => dataplane(
            args.iter().any(|a| a == "--quick"),
            args.get(2)
                .filter(|a| !a.starts_with("--"))
                .map(String::as_str),
        ),
        Some("l7") => {
            let quick = args.iter().any(|a| a == "--quick");
            let o = l7::Options {
                rounds: if quick { 1 } else { 3 },
                requests: if quick { 20_000 } else { 200_000 },
                between_nodes: args.iter().any(|a| a == "--between-nodes"),
            };
            println!("## Redis through the L7 proxy\n");
            println!("{}", l7::redis(&bulkhead_bin()?, &o)?);
            Ok(())
        }
        Some("dns") => {
            let quick = args.iter().any(|a| a == "--quick");
            let o = dns::Options {
                rounds: if quick { 1 } else { 3 },
                seconds: arg(&args, "--seconds")
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(if quick { 3 } else { 10 }),
            };
            println!("## DNS through the L7 proxy\n");
            println!("{}", dns::run(&bulkhead_bin()?, &o)?);
            Ok(())
        }
        Some("api") => {
            let quick = args.iter().any(|a| a == "--quick");
            let o = api::Options {
                records: if quick { 100_000 } else { 1_000_000 },
                clients: if quick { vec![1, 8] } else { vec![1, 8, 64] },
                seconds: if quick { 2.0 } else { 5.0 },
            };
            println!("## API latency under load\n");
            println!("{}", api::run(&bulkhead_bin()?, &o)?);
            Ok(())
        }
        Some("http") => {
            let quick = args.iter().any(|a| a == "--quick");
            let o = http::Options {
                rounds: if quick { 1 } else { 3 },
                seconds: arg(&args, "--seconds")
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(if quick { 3 } else { 10 }),
                busy_poll: arg(&args, "--busy-poll").map(str::to_string),
            };
            println!("## HTTP through the L7 proxy\n");
            println!(
                "{}",
                http::run_bench(&bulkhead_bin()?, &std::env::current_exe()?, &o)?
            );
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// The `bulkhead` binary next to this one (or `BULKHEAD_BIN`).
fn bulkhead_bin() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bulkhead = std::env::var_os("BULKHEAD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| me.with_file_name("bulkhead"));
    if !bulkhead.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p bulkhead-cli) or set BULKHEAD_BIN",
            bulkhead.display()
        );
    }
    Ok(bulkhead)
}

fn dataplane(quick: bool, only: Option<&str>) -> Result<()> {
    let want = |part: &str| only.is_none_or(|o| o == part);
    let me = std::env::current_exe()?;
    let bulkhead = bulkhead_bin()?;
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");

    if want("objects") {
        println!("## Objects vs replicas\n");
        let scales: &[usize] = if quick { &[1, 10] } else { &[1, 10, 100, 1000] };
        println!("{}", objects::run(&examples, scales)?);
    }
    if want("throughput") {
        println!("## Throughput and new connections\n");
        // Throughput on a 2-core machine is noisy: BULKHEAD_BENCH_ROUNDS and
        // BULKHEAD_BENCH_SECONDS lengthen the run.
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
        let t = throughput::Options {
            seconds: env("BULKHEAD_BENCH_SECONDS").unwrap_or(if quick { 2.0 } else { 5.0 }),
            rounds: env("BULKHEAD_BENCH_ROUNDS").map_or(if quick { 1 } else { 3 }, |r| r as usize),
            workloads: 10_000,
            policies: 3_000,
        };
        println!("{}", throughput::run(&bulkhead, &me, &t)?);
    }
    if want("latency") {
        println!("## Change -> programmed\n");
        let l = latency::Options {
            sizes: if quick {
                vec![(1_000, 100)]
            } else {
                vec![(1_000, 100), (10_000, 1_000)]
            },
            relabels: if quick { 10 } else { 60 },
            policy_edits: if quick { 3 } else { 15 },
        };
        println!("{}", latency::run(&bulkhead, &l)?);
    }
    Ok(())
}
