//! The netlink batch encoder against its oracle, nft itself (root): the same transaction
//! applied by nft in one network namespace and by `batch::apply` in another must leave
//! the same kernel state, bytecode included (`nft --debug=netlink list`), for full
//! rulesets and for the incremental transactions that follow engine changes.

use std::process::Command;

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, Ruleset, Transaction, batch, diff, render};
use bulkhead_model::Protocol;
use bulkhead_policy::Engine;
use bulkhead_policy::spec::{Bundle, PortSel, PortSpec};

mod common;
use common::{Netns, bundle};

/// `nft --debug=netlink list table inet bulkhead`, without what legitimately differs
/// between two namespaces: rule handles and positions, the numbers of anonymous sets,
/// and the order in which hash sets list their elements (a per-set random seed).
fn listing(ns: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nft",
            "--debug=netlink",
            "list",
            "table",
            "inet",
            "bulkhead",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such file or directory") {
        return "(no table)".into();
    }
    assert!(out.status.success(), "{stderr}");
    normalise(&String::from_utf8(out.stdout).unwrap())
}

fn normalise(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut elems: Vec<String> = Vec::new();
    let mut text_elems: Option<String> = None;
    let anon = |l: &str| {
        let mut s = String::new();
        let mut rest = l;
        while let Some(i) = rest.find("__set") {
            s.push_str(&rest[..i + 5]);
            rest = rest[i + 5..].trim_start_matches(|c: char| c.is_ascii_digit());
        }
        s.push_str(rest);
        s
    };
    let flush = |out: &mut Vec<String>, elems: &mut Vec<String>| {
        elems.sort();
        out.append(elems);
    };
    for line in text.lines() {
        let line = anon(line);
        // The text listing's `elements = { a, b,\n c }`: sorted items.
        let piece = match (text_elems.is_some(), line.find("elements = {")) {
            (true, _) => line.trim(),
            (false, Some(i)) => {
                text_elems = Some(String::new());
                line[i + "elements = {".len()..].trim()
            }
            (false, None) => "",
        };
        if let Some(acc) = text_elems.as_mut() {
            acc.push_str(piece);
            acc.push(' ');
            if piece.ends_with('}') {
                let body = acc.trim().trim_end_matches('}').to_string();
                let mut items: Vec<&str> = body
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                items.sort();
                out.push(format!("elements = {{ {} }}", items.join(", ")));
                text_elems = None;
            }
            continue;
        }
        if line.starts_with("\telement ") {
            elems.push(line);
            continue;
        }
        flush(&mut out, &mut elems);
        // `inet bulkhead CHAIN HANDLE [POSITION]`
        if line.starts_with("inet bulkhead ") && !line.contains('@') {
            let words: Vec<&str> = line.split(' ').collect();
            if words.len() >= 4 && words[3..].iter().all(|w| w.parse::<u64>().is_ok()) {
                out.push(words[..3].join(" "));
                continue;
            }
        }
        out.push(line);
    }
    flush(&mut out, &mut elems);
    out.join("\n")
}

fn first_difference(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let lo = i.saturating_sub(8);
    format!(
        "first difference at line {i}\n--- nft:\n{}\n--- batch:\n{}",
        a[lo..(i + 12).min(a.len())].join("\n"),
        b[lo..(i + 12).min(b.len())].join("\n")
    )
}

/// Two namespaces, A (nft) and B (netlink batch), fed the same transactions.
struct Pair {
    a: Netns,
    b: Netns,
}

impl Pair {
    fn new(tag: &str) -> Option<Pair> {
        let a = Netns::new(&format!("bh-test-batch-{tag}-a"))?;
        let b = Netns::new(&format!("bh-test-batch-{tag}-b"))?;
        Some(Pair { a, b })
    }

    fn nft_a(&self) -> Nft {
        Nft::in_netns(&self.a.0)
    }

    fn nft_b(&self) -> Nft {
        Nft::in_netns(&self.b.0)
    }

    /// Apply `tx` both ways and check that the two kernels hold the same table.
    fn apply(&self, what: &str, tx: &Transaction) {
        self.nft_a()
            .apply(tx)
            .unwrap_or_else(|e| panic!("{what}: nft: {e}"));
        batch::apply(Some(&self.b.0), tx)
            .unwrap_or_else(|e| panic!("{what}: batch: {e}\n{}", tx.to_json()));
        let (la, lb) = (listing(&self.a.0), listing(&self.b.0));
        assert!(la == lb, "{what}: {}", first_difference(&la, &lb));
        let (ra, rb) = (self.nft_a().read().unwrap(), self.nft_b().read().unwrap());
        assert_eq!(ra, rb, "{what}: the adoption parser reads different tables");
    }

    /// From whatever A holds to `desired`, both ways; then nothing is left to do.
    fn converge(&self, what: &str, desired: &Ruleset) {
        let tx = diff(&self.nft_a().read().unwrap(), desired);
        assert!(!tx.is_empty(), "{what}: nothing to apply");
        self.apply(what, &tx);
        assert!(
            diff(&self.nft_b().read().unwrap(), desired).is_empty(),
            "{what}: the batch did not reach the desired state"
        );
    }
}

fn all_options() -> Vec<(&'static str, RenderOptions)> {
    vec![
        ("default", RenderOptions::default()),
        (
            "full",
            RenderOptions {
                node: None,
                pod_interfaces: Some("bh*".into()),
                log_allowed: true,
                silent_drop: false,
                l7_proxy: Some(15001),
                quarantine: ["10.9.9.9", "fd00::9"]
                    .iter()
                    .map(|a| a.parse().unwrap())
                    .collect(),
            },
        ),
        (
            "silent",
            RenderOptions {
                node: None,
                pod_interfaces: Some("bh*".into()),
                log_allowed: false,
                silent_drop: true,
                l7_proxy: None,
                quarantine: Default::default(),
            },
        ),
    ]
}

/// A rule with ICMP, ICMPv6 and a port range, added to the first policy with rules.
fn with_icmp(mut b: Bundle) -> Bundle {
    let p = b
        .policy
        .policies
        .iter_mut()
        .find(|p| !p.ingress.is_empty())
        .expect("a policy with ingress rules");
    let mut r = p.ingress[0].clone();
    r.app = None;
    r.l7.clear();
    r.ports = vec![
        PortSpec {
            protocol: Some(Protocol::Icmp),
            port: PortSel::Icmp {
                icmp_type: 8,
                code: Some(0),
            },
        },
        PortSpec {
            protocol: Some(Protocol::Icmpv6),
            port: PortSel::Icmp {
                icmp_type: 128,
                code: None,
            },
        },
        PortSpec {
            protocol: Some(Protocol::Icmp),
            port: PortSel::Any,
        },
        PortSpec {
            protocol: Some(Protocol::Udp),
            port: PortSel::Range(bulkhead_model::PortRange { lo: 1000, hi: 2000 }),
        },
    ];
    p.ingress.push(r);
    b
}

/// A full ruleset, then incremental changes: a relabelled workload, a policy's port
/// changed, a policy removed; then the table deleted.
fn scenario(tag: &str, b: Bundle, opts: &RenderOptions) {
    let Some(pair) = Pair::new(tag) else {
        return;
    };
    let mut engine = Engine::new(&b).unwrap();
    let mut ids = KernelIds::new();
    pair.converge(&format!("{tag}: full"), &render(&engine, opts, &mut ids));

    if let Some(mut w) = b.inventory.workloads.first().cloned() {
        w.labels.insert("relabelled", "yes".to_string());
        engine.upsert_workload(w);
        let next = render(&engine, opts, &mut ids);
        let tx = diff(&pair.nft_a().read().unwrap(), &next);
        if !tx.is_empty() {
            pair.apply(&format!("{tag}: relabel"), &tx);
        }
    }

    let mut policy = engine.policy().clone();
    if let Some(port) = policy
        .policies
        .iter_mut()
        .flat_map(|p| p.ingress.iter_mut().chain(p.egress.iter_mut()))
        .flat_map(|r| r.ports.iter_mut())
        .find(|p| matches!(p.port, PortSel::Range(_)))
    {
        port.port = PortSel::Range(bulkhead_model::PortRange { lo: 4242, hi: 4242 });
        engine.set_policy(policy.clone()).unwrap();
        pair.converge(&format!("{tag}: port"), &render(&engine, opts, &mut ids));
    }

    if !policy.policies.is_empty() {
        policy.policies.remove(0);
        engine.set_policy(policy).unwrap();
        pair.converge(
            &format!("{tag}: policy removed"),
            &render(&engine, opts, &mut ids),
        );
    }

    pair.apply(
        &format!("{tag}: delete"),
        &bulkhead_dataplane::diff::delete_table(),
    );
}

#[test]
fn examples_every_option() {
    for (name, opts) in all_options() {
        scenario(&format!("ex-{name}"), bundle("examples"), &opts);
    }
}

#[test]
fn examples_with_icmp_and_ranges() {
    scenario("icmp", with_icmp(bundle("examples")), &all_options()[1].1);
}

#[test]
fn conformance_scenarios() {
    for (i, dir) in [
        "36-ipblock-except-ingress-with-pod-ips",
        "38-ipblock-except-covered-by-other-peer",
        "52-ipblock-ipv6-pod-ips",
        "28-named-port-ingress",
        "32-named-port-egress-resolved-on-destination",
        "33-end-port-range-ingress",
        "26-protocol-sctp",
        "45-egress-pod-selector-plus-dns",
    ]
    .iter()
    .enumerate()
    {
        let b = bundle(&format!("conformance/scenarios/{dir}"));
        let opts = &all_options()[i % 3].1;
        scenario(&format!("conf{i}"), b, opts);
    }
}

#[test]
fn synthetic_cluster() {
    let b = bulkhead_synth::cluster(1_000, 100, 11);
    scenario("synth", b, &all_options()[1].1);
}

/// FQDN egress: DNS sets (`flags timeout`), the DNS divert rules and the UDP carve-out of
/// the divert chain's established rule, with every option set.
#[test]
fn fqdn_dns_peers() {
    for (name, opts) in all_options() {
        scenario(
            &format!("fqdn-{name}"),
            bundle("crates/cli/tests/fixtures/fqdn"),
            &opts,
        );
    }
}
