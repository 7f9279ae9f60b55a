//! `analyze blast-radius`: what a compromised workload can reach, directly and through
//! other workloads it can reach, with the shortest path to each.

use std::collections::VecDeque;

use bulkhead_model::L4;
use bulkhead_policy::{Connection, Endpoint, Engine, WorkloadId};
use serde::Serialize;

use crate::matrix::Family;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub to: String,
    /// Probes allowed on this hop.
    pub via: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub workload: String,
    /// 1 = directly reachable.
    pub hops: usize,
    /// From the origin's first hop to this workload.
    pub path: Vec<Hop>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlastRadius {
    pub origin: String,
    pub probes: Vec<String>,
    pub workloads_total: usize,
    pub direct: Vec<Reach>,
    pub transitive: Vec<Reach>,
}

/// Breadth-first search over "can open a connection on at least one probe".
pub fn blast_radius(
    engine: &Engine,
    origin: WorkloadId,
    probes: &[L4],
    family: Family,
) -> BlastRadius {
    let all = engine.workloads();
    let index_of = |id: WorkloadId| all.iter().position(|(w, _)| *w == id);
    let ends: Vec<Endpoint> = all
        .iter()
        .map(|(id, w)| Endpoint::Workload {
            id: *id,
            addr: w.ip(family == Family::V6),
        })
        .collect();
    let n = all.len();
    let mut parent: Vec<Option<(usize, Vec<String>)>> = vec![None; n];
    let mut depth = vec![usize::MAX; n];
    let mut queue = VecDeque::new();
    if let Some(o) = index_of(origin) {
        depth[o] = 0;
        queue.push_back(o);
    }
    while let Some(u) = queue.pop_front() {
        for v in 0..n {
            if depth[v] != usize::MAX {
                continue;
            }
            let via: Vec<String> = probes
                .iter()
                .filter(|l4| {
                    engine
                        .verdict(&Connection {
                            src: &ends[u],
                            dst: &ends[v],
                            l4: **l4,
                            l7: None,
                        })
                        .allowed
                })
                .map(|p| p.to_string())
                .collect();
            if via.is_empty() {
                continue;
            }
            depth[v] = depth[u] + 1;
            parent[v] = Some((u, via));
            queue.push_back(v);
        }
    }
    let mut direct = Vec::new();
    let mut transitive = Vec::new();
    for v in 0..n {
        if depth[v] == 0 || depth[v] == usize::MAX {
            continue;
        }
        let mut path = Vec::new();
        let mut cur = v;
        while let Some((p, via)) = &parent[cur] {
            path.push(Hop {
                to: all[cur].1.key.to_string(),
                via: via.clone(),
            });
            cur = *p;
        }
        path.reverse();
        let reach = Reach {
            workload: all[v].1.key.to_string(),
            hops: depth[v],
            path,
        };
        if depth[v] == 1 {
            direct.push(reach);
        } else {
            transitive.push(reach);
        }
    }
    transitive.sort_by(|a, b| (a.hops, &a.workload).cmp(&(b.hops, &b.workload)));
    BlastRadius {
        origin: index_of(origin)
            .map(|o| all[o].1.key.to_string())
            .unwrap_or_default(),
        probes: probes.iter().map(|p| p.to_string()).collect(),
        workloads_total: n,
        direct,
        transitive,
    }
}
