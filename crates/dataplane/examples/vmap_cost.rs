//! Which element changes are slow against a big table: plain data or verdict (goto)?
use std::time::Instant;

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::netlink::{ElemOp, apply};
use bulkhead_dataplane::{Elem, KernelIds, RenderOptions, SetKind, diff, render};
use bulkhead_policy::Engine;

fn main() {
    let ns = std::env::args().nth(1).expect("usage: vmap_cost NETNS");
    let bundle = bulkhead_synth::cluster(10_000, 1_000, 7);
    let engine = Engine::new(&bundle).unwrap();
    let full = render(&engine, &RenderOptions::default(), &mut KernelIds::new());
    Nft::in_netns(&ns)
        .apply(&diff(&Ruleset::default(), &full))
        .unwrap();
    let chain = match full.sets["e_dispatch"]
        .elems
        .as_ref()
        .unwrap()
        .iter()
        .next()
        .unwrap()
    {
        Elem::MarkGoto(_, c) => c.clone(),
        _ => unreachable!(),
    };
    for i in 0..5u32 {
        let data = ElemOp {
            set: "id4".into(),
            kind: SetKind::AddrMarks4,
            add: true,
            elem: Elem::AddrMark(std::net::IpAddr::from([10, 200, 0, i as u8 + 1]), 17),
        };
        let t = Instant::now();
        apply(Some(&ns), &[data]).unwrap();
        let plain = t.elapsed();
        let goto = ElemOp {
            set: "e_dispatch".into(),
            kind: SetKind::MarkVerdicts,
            add: true,
            elem: Elem::MarkGoto(900_000 + i, chain.clone()),
        };
        let t = Instant::now();
        apply(Some(&ns), &[goto]).unwrap();
        println!(
            "plain data element: {plain:?}   goto element: {:?}",
            t.elapsed()
        );
    }
}
use bulkhead_dataplane::Ruleset;
