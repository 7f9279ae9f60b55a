//! How long decoding takes for a large inventory: 10,000 generated Pod documents in one
//! file (about 4 MB), from text to `Bundle`.

use std::hint::black_box;

use bulkhead_manifest::{Source, parse_sources};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn pods(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let ns = format!("ns-{}", i % 50);
        text.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: pod-{i}
  namespace: {ns}
  labels:
    app: app-{app}
    tier: "{tier}"
    app.kubernetes.io/version: "1.{i}"
  annotations:
    example.com/owner: team-{app}
spec:
  nodeName: node-{node}
  containers:
    - name: main
      image: registry.example.com/app:{i}
      ports:
        - {{name: http, containerPort: 8080}}
        - {{name: metrics, containerPort: 9090, protocol: TCP}}
    - name: sidecar
      image: registry.example.com/proxy:1
      ports: [{{containerPort: 15001}}]
status:
  phase: Running
  podIP: 10.{a}.{b}.{c}
  podIPs: [{{ip: 10.{a}.{b}.{c}}}]
"#,
            app = i % 100,
            tier = ["front", "back", "db"][i % 3],
            node = i % 20,
            a = i / 65536,
            b = (i / 256) % 256,
            c = i % 256,
        ));
    }
    text
}

fn load(c: &mut Criterion) {
    let text = pods(10_000);
    let sources = [Source {
        name: "pods.yaml".into(),
        text,
    }];
    let mut g = c.benchmark_group("parse_sources");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(sources[0].text.len() as u64));
    g.bench_function("10k_pods", |b| {
        b.iter(|| {
            let bundle = parse_sources(black_box(&sources)).unwrap();
            assert_eq!(bundle.inventory.workloads.len(), 10_000);
            bundle
        })
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
