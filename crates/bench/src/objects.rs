//! nftables objects vs replicas: the bundled example with every workload scaled 1x to
//! 1000x. Chains, rules and sets must stay flat; only set elements (addresses) grow.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_policy::Engine;

use crate::lab::Netns;

pub fn run(examples: &Path, scales: &[usize]) -> Result<String> {
    let bundle = bulkhead_manifest::load(&[examples.to_path_buf()], false)
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let mut out = String::from(
        "| replicas per workload | workloads | identities | nft chains | nft rules | nft sets | set elements | in the kernel (chains/rules/sets) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for &n in scales {
        let b = bulkhead_synth::scaled(&bundle, n);
        let engine = Engine::new(&b).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let desired = render(&engine, &RenderOptions::default(), &mut KernelIds::new());
        let c = desired.object_count();
        // Also in a real kernel, counted from what nft lists.
        let netns = Netns::new("bhbench-objects")?;
        let nft = Nft::in_netns(&netns.0);
        nft.apply(&diff(&nft.read()?, &desired))?;
        let listed = nft.list_raw()?.unwrap_or_default();
        let count = |k: &str| {
            listed["nftables"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|o| o.get(k).is_some()).count())
        };
        let kernel = format!(
            "{}/{}/{}",
            count("chain"),
            count("rule"),
            count("set") + count("map")
        );
        let s = engine.stats();
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} | {kernel} |",
            s.workloads, s.identities, c.chains, c.rules, c.sets, c.elements
        );
    }
    Ok(out)
}
