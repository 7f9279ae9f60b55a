//! Refusals in the protocol: a request whose every topic is denied gets the broker's own
//! answer, every topic and partition failing with TOPIC_AUTHORIZATION_FAILED (29),
//! decoded by `kafka-protocol` in every version it knows and by kafka-python (the
//! client's own decoders) in the old versions it speaks; exact bytes for two.

use super::apis::*;
use super::*;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsResponse, DeleteTopicsResponse, FetchResponse, ListOffsetsResponse,
    MetadataResponse, OffsetCommitResponse, OffsetFetchResponse,
};

fn deny(_: &L7Request) -> Verdict {
    Verdict { allowed: false }
}

/// The proxy's answer to a request it denies whole (the session goes on).
pub fn refused(request: &[u8]) -> Vec<u8> {
    let mut sess = KafkaSession::new();
    let out = sess.client_bytes(request, &mut deny);
    assert!(!out.close, "{:?}", out.decided);
    assert!(out.to_server.is_empty());
    assert!(out.decided.iter().all(|d| d.refusal.is_some()));
    out.to_client
}

const DENIED: [&str; 2] = ["payroll", "audit"];

/// (topic, [(partition, error)]) for each topic of a response.
type Errors = Vec<(String, Vec<(i32, i16)>)>;

/// The errors of a decoded response's topics (`$name`: their name field).
macro_rules! errors {
    ($topics:expr, $name:ident) => {
        $topics
            .iter()
            .map(|t| {
                let e = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.error_code));
                (t.$name.to_string(), e.collect())
            })
            .collect::<Errors>()
    };
}

/// (name, error) of a decoded response's topics whose names are nullable.
macro_rules! topic_errors {
    ($topics:expr) => {
        $topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().to_string(), t.error_code))
            .collect::<Vec<(String, i16)>>()
    };
}

fn want_topics() -> Vec<(String, i16)> {
    DENIED.iter().map(|t| (t.to_string(), 29)).collect()
}

fn want(parts: &[i32]) -> Errors {
    DENIED
        .iter()
        .map(|t| (t.to_string(), parts.iter().map(|p| (*p, 29)).collect()))
        .collect()
}

#[test]
fn every_api_and_version_gets_topic_authorization_failed() {
    for v in 4..=12 {
        let (corr, r): (_, FetchResponse) = decode(ApiKey::Fetch, v, &refused(&fetch(v, &DENIED)));
        assert_eq!(corr, 3);
        let got = errors!(r.responses, topic);
        assert_eq!(got, want(&[0]), "fetch v{v}");
        assert_eq!(r.error_code, 0);
    }
    for v in 13..=18 {
        let f = FetchRequest::default().with_topics(vec![
            FetchTopic::default()
                .with_topic_id(ID_LABEL[9..].parse().unwrap())
                .with_partitions(vec![FetchPartition::default().with_partition(4)]),
        ]);
        let (_, r): (_, FetchResponse) =
            decode(ApiKey::Fetch, v, &refused(&encode(ApiKey::Fetch, v, 3, &f)));
        assert_eq!(r.responses[0].topic_id.as_bytes(), &ID, "fetch v{v}");
        assert_eq!(r.responses[0].partitions[0].partition_index, 4);
        assert_eq!(r.responses[0].partitions[0].error_code, 29);
    }
    for v in 1..=10 {
        let (corr, r): (_, ListOffsetsResponse) = decode(
            ApiKey::ListOffsets,
            v,
            &refused(&list_offsets(v, "payroll")),
        );
        assert_eq!(corr, 4);
        let p = &r.topics[0].partitions[0];
        assert_eq!(r.topics[0].name.to_string(), "payroll", "listoffsets v{v}");
        assert_eq!((p.error_code, p.offset), (29, -1), "listoffsets v{v}");
    }
    for v in 0..=13 {
        let (corr, r): (_, MetadataResponse) =
            decode(ApiKey::Metadata, v, &refused(&metadata(v, Some(&DENIED))));
        assert_eq!(corr, 1);
        assert_eq!(topic_errors!(r.topics), want_topics(), "metadata v{v}");
        assert!(r.topics.iter().all(|t| t.partitions.is_empty()));
    }
    for v in 2..=9 {
        let (corr, r): (_, OffsetCommitResponse) = decode(
            ApiKey::OffsetCommit,
            v,
            &refused(&offset_commit(v, &DENIED)),
        );
        assert_eq!(corr, 8);
        let got = errors!(r.topics, name);
        assert_eq!(got, want(&[0, 5]), "offsetcommit v{v}");
    }
    let (_, r): (_, OffsetCommitResponse) =
        decode(ApiKey::OffsetCommit, 10, &refused(&offset_commit_v10()));
    assert_eq!(r.topics[0].topic_id.as_bytes(), &ID);
    assert_eq!(r.topics[0].partitions[0].error_code, 29);
    for v in 1..=7 {
        let (corr, r): (_, OffsetFetchResponse) = decode(
            ApiKey::OffsetFetch,
            v,
            &refused(&offset_fetch(v, Some(&DENIED))),
        );
        assert_eq!(corr, 9);
        let got = errors!(r.topics, name);
        assert_eq!(got, want(&[0, 5]), "offsetfetch v{v}");
        assert!(
            r.topics[0]
                .partitions
                .iter()
                .all(|p| p.committed_offset == -1)
        );
        assert_eq!(r.error_code, 0);
        if v >= 2 {
            // All of the group's topics: the request fails as a whole.
            let (_, r): (_, OffsetFetchResponse) =
                decode(ApiKey::OffsetFetch, v, &refused(&offset_fetch(v, None)));
            assert!(r.topics.is_empty());
            assert_eq!(r.error_code, 29, "offsetfetch v{v}");
        }
    }
    for v in 8..=9 {
        let (_, r): (_, OffsetFetchResponse) = decode(
            ApiKey::OffsetFetch,
            v,
            &refused(&offset_fetch_groups(v, &DENIED)),
        );
        let g: Vec<(String, i16, Errors)> = r
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.error_code,
                    errors!(g.topics, name),
                )
            })
            .collect();
        assert_eq!(
            g,
            [
                ("group-1".into(), 0, want(&[0, 5])),
                ("group-2".into(), 29, Vec::new())
            ],
            "offsetfetch v{v}"
        );
    }
    let (_, r): (_, OffsetFetchResponse) =
        decode(ApiKey::OffsetFetch, 10, &refused(&offset_fetch_v10()));
    assert_eq!(r.groups[0].topics[0].topic_id.as_bytes(), &ID);
    assert_eq!(r.groups[0].topics[0].partitions[0].error_code, 29);
    for v in 2..=7 {
        let (corr, r): (_, CreateTopicsResponse) = decode(
            ApiKey::CreateTopics,
            v,
            &refused(&create_topics(v, &DENIED)),
        );
        assert_eq!(corr, 19);
        let got: Vec<(String, i16)> = r
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.error_code))
            .collect();
        assert_eq!(
            got,
            [("payroll".into(), 29), ("audit".into(), 29)],
            "createtopics v{v}"
        );
        assert_eq!(
            r.topics[1].error_message.as_deref(),
            Some("bulkhead: topic audit is not allowed by policy")
        );
    }
    for v in 1..=6 {
        let (corr, r): (_, DeleteTopicsResponse) = decode(
            ApiKey::DeleteTopics,
            v,
            &refused(&delete_topics(v, &DENIED)),
        );
        assert_eq!(corr, 20);
        assert_eq!(
            topic_errors!(r.responses),
            want_topics(),
            "deletetopics v{v}"
        );
    }
}

/// The bytes themselves, field by field from the response schemas.
#[test]
fn refusal_bytes_are_exactly_the_schema() {
    // OffsetCommitResponse v8 (flexible): correlation 8, header tags, throttle 0,
    // compact [topic "payroll" compact [(0, 29, tags), (5, 29, tags)] tags], tags.
    let mut want = vec![0, 0, 0, 8, 0, 0, 0, 0, 0, 2, 8];
    want.extend_from_slice(b"payroll");
    want.extend_from_slice(&[3, 0, 0, 0, 0, 0, 29, 0, 0, 0, 0, 5, 0, 29, 0, 0, 0]);
    let got = refused(&offset_commit(8, &["payroll"]));
    assert_eq!(
        got,
        [(want.len() as u32).to_be_bytes().to_vec(), want].concat()
    );
    // CreateTopicsResponse v2: correlation 19, throttle 0, [("payroll", 29, message)].
    let msg = b"bulkhead: topic payroll is not allowed by policy";
    let mut want = vec![0, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7];
    want.extend_from_slice(b"payroll");
    want.extend_from_slice(&[0, 29, 0, msg.len() as u8]);
    want.extend_from_slice(msg);
    let got = refused(&create_topics(2, &["payroll"]));
    assert_eq!(
        got,
        [(want.len() as u32).to_be_bytes().to_vec(), want].concat()
    );
}

/// A refused Metadata request lists the brokers the broker's last Metadata response on
/// the connection did (clients drop a Metadata response without brokers); asking for
/// all topics, denied, lists none.
#[test]
fn a_refused_metadata_request_names_the_cluster_the_broker_described() {
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    for v in 0..=13 {
        let broker = MetadataResponseBroker::default()
            .with_node_id(BrokerId(7))
            .with_host(StrBytes::from_static_str("kafka-0.example"))
            .with_port(9092)
            .with_rack((v >= 1).then(|| StrBytes::from_static_str("rack-a")));
        let resp = MetadataResponse::default()
            .with_brokers(vec![broker.clone()])
            .with_cluster_id((v >= 2).then(|| StrBytes::from_static_str("cluster-1")))
            .with_controller_id(BrokerId(if v >= 1 { 7 } else { -1 }));
        let answer = metadata_answer(v, &resp);
        let mut sess = KafkaSession::new();
        let out = sess.client_bytes(&metadata(v, Some(&["orders"])), &mut policy);
        assert_eq!(out.to_server.len(), metadata(v, Some(&["orders"])).len());
        for p in pieces(&answer, &[3; 1000]) {
            sess.server_bytes(&p);
        }
        let out = sess.client_bytes(&metadata(v, Some(&["payroll"])), &mut policy);
        let (_, r): (_, MetadataResponse) = decode(ApiKey::Metadata, v, &out.to_client);
        assert_eq!(r.brokers, [broker], "v{v}");
        assert_eq!(r.cluster_id, resp.cluster_id, "v{v}");
        assert_eq!(r.controller_id, resp.controller_id, "v{v}");
        assert_eq!(r.topics[0].error_code, 29);
        if v >= 1 {
            let out = sess.client_bytes(&metadata(v, None), &mut deny);
            let (_, r): (_, MetadataResponse) = decode(ApiKey::Metadata, v, &out.to_client);
            assert!(r.topics.is_empty() && r.brokers.len() == 1, "v{v}");
            assert_eq!(
                out.decided[0].refusal.as_deref(),
                Some("answered with no topic")
            );
        }
    }
}

const ENCODE: &str = r#"
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.commit import OffsetCommitRequest as OC, OffsetFetchRequest as OF
from kafka.protocol.admin import CreateTopicsRequest as CT, DeleteTopicsRequest as DT
from kafka.protocol.fetch import FetchRequest as F
from kafka.protocol.offset import OffsetRequest as LO
from kafka.protocol.metadata import MetadataRequest as M
from kafka.protocol.produce import ProduceRequest as P
T = ['payroll', 'audit']
reqs = [OC[0]('g', [(t, [(0, 10, ''), (5, 11, None)]) for t in T]),
        OC[1]('g', 1, 'm', [(t, [(0, 10, 0, ''), (5, 11, 0, '')]) for t in T])]
reqs += [OC[v]('g', 1, 'm', -1, [(t, [(0, 10, ''), (5, 11, '')]) for t in T]) for v in (2, 3)]
reqs += [OF[v]('g', [(t, [0, 5]) for t in T]) for v in range(4)]
reqs += [CT[0]([(t, 3, 1, [(0, [1])], [('cleanup.policy', 'compact')]) for t in T], 1000)]
reqs += [CT[v]([(t, 3, 1, [], [('a', None)]) for t in T], 1000, False) for v in (1, 2, 3)]
reqs += [F[v](-1, 100, 1, [(t, [(0, 0, 1024), (5, 0, 1024)]) for t in T]) for v in (0, 1, 2)]
reqs += [F[3](-1, 100, 1, 1 << 20, [(t, [(0, 0, 1024), (5, 0, 1024)]) for t in T])]
reqs += [LO[0](-1, [(t, [(0, -1, 1), (5, -1, 1)]) for t in T])]
reqs += [M[0](T), DT[0](T, 1000)]
reqs += [P[v](1, 1000, [(t, [(0, b'x'), (5, b'y')]) for t in T]) for v in (0, 1, 2)]
for r in reqs:
    p = KafkaProtocol(client_id='kafka-python')
    p.send_request(r)
    print(r.API_KEY, r.API_VERSION, p.send_bytes().hex())
"#;

const DECODE: &str = r#"
import sys, io, struct
from kafka.protocol.commit import OffsetCommitResponse, OffsetFetchResponse
from kafka.protocol.admin import CreateTopicsResponse, DeleteTopicsResponse
from kafka.protocol.fetch import FetchResponse
from kafka.protocol.offset import OffsetResponse
from kafka.protocol.metadata import MetadataResponse
from kafka.protocol.produce import ProduceResponse
R = {0: ProduceResponse, 1: FetchResponse, 2: OffsetResponse, 3: MetadataResponse,
     8: OffsetCommitResponse, 9: OffsetFetchResponse, 19: CreateTopicsResponse,
     20: DeleteTopicsResponse}
for line in sys.stdin:
    key, v, h = line.split()
    b = bytes.fromhex(h)
    assert struct.unpack('>i', b[:4])[0] == len(b) - 4
    buf = io.BytesIO(b[8:])
    r = R[int(key)][int(v)].decode(buf)
    assert buf.read() == b'', 'bytes left'
    print(struct.unpack('>i', b[4:8])[0], repr(r))
"#;

fn python(script: &str, input: &str) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// kafka-python's requests of the old versions (OffsetCommit v0-3, OffsetFetch v0-3,
/// CreateTopics v0-3, Fetch v0-3, ListOffsets v0, Metadata v0, DeleteTopics v0,
/// Produce v0-2) are decided on their topics, and kafka-python decodes each refusal
/// whole, every topic named and every partition (or topic) failing with 29.
#[test]
fn kafka_python_requests_and_refusals_of_old_versions() {
    let has = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("skipped: python3-kafka is not installed");
        return;
    }
    let mut lines = Vec::new();
    let mut expect = Vec::new();
    for line in python(ENCODE, "").lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (key, v): (i16, i16) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let b: Vec<u8> = (0..f[2].len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&f[2][i..i + 2], 16).unwrap())
            .collect();
        let api = kafka::api_name(key);
        let reqs: Vec<String> = kafka::requests(&b[4..])
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            reqs,
            DENIED.map(|t| format!("kafka {api} {t}")),
            "{api} v{v}"
        );
        let corr = i32::from_be_bytes(b[8..12].try_into().unwrap());
        // Errors per partition, but per topic for these three.
        let errors = if [3, 19, 20].contains(&key) { 2 } else { 4 };
        lines.push(format!("{key} {v} {}", hex(&refused(&b))));
        expect.push((format!("{api} v{v}"), corr, errors));
    }
    assert_eq!(lines.len(), 22);
    let decoded = python(DECODE, &(lines.join("\n") + "\n"));
    let decoded: Vec<&str> = decoded.lines().collect();
    assert_eq!(decoded.len(), expect.len());
    for (line, (what, corr, errors)) in decoded.iter().zip(expect) {
        let (c, repr) = line.split_once(' ').unwrap();
        assert_eq!(c.parse::<i32>().unwrap(), corr, "{what}");
        assert!(
            repr.contains("'payroll'") && repr.contains("'audit'"),
            "{what}: {repr}"
        );
        let n = repr
            .split(|c: char| !c.is_ascii_digit() && c != '-')
            .filter(|t| *t == "29")
            .count();
        assert_eq!(n, errors, "{what}: {repr}");
    }
}

/// A request of every API in versions `kafka-protocol` decodes the answers of.
fn samples() -> Vec<Vec<u8>> {
    let t = &DENIED;
    let mut v: Vec<Vec<u8>> = Vec::new();
    v.extend((3..=12).map(|v| produce(v, t)));
    v.extend((4..=12).map(|v| fetch(v, t)));
    v.extend((1..=10).map(|v| list_offsets(v, "payroll")));
    v.extend((0..=13).map(|v| metadata(v, Some(t))));
    v.extend((2..=9).map(|v| offset_commit(v, t)));
    v.extend((1..=7).map(|v| offset_fetch(v, Some(t))));
    v.extend((8..=9).map(|v| offset_fetch_groups(v, t)));
    v.extend((2..=7).map(|v| create_topics(v, t)));
    v.extend((1..=6).map(|v| delete_topics(v, t)));
    v.extend([offset_commit_v10(), offset_fetch_v10()]);
    v
}

/// Decode a refusal whole with the response type of its API (panics if it does not).
fn decode_any(key: i16, v: i16, b: &[u8]) {
    let k = ApiKey::try_from(key).unwrap();
    match key {
        0 => drop(decode::<ProduceResponse>(k, v, b)),
        1 => drop(decode::<FetchResponse>(k, v, b)),
        2 => drop(decode::<ListOffsetsResponse>(k, v, b)),
        3 => drop(decode::<MetadataResponse>(k, v, b)),
        8 => drop(decode::<OffsetCommitResponse>(k, v, b)),
        9 => drop(decode::<OffsetFetchResponse>(k, v, b)),
        19 => drop(decode::<CreateTopicsResponse>(k, v, b)),
        _ => drop(decode::<DeleteTopicsResponse>(k, v, b)),
    }
}

/// The oldest version `kafka-protocol` decodes the response of.
fn oldest(key: i16) -> i16 {
    match key {
        0 => 3,
        1 => 4,
        3 => 0,
        8 | 19 => 2,
        _ => 1,
    }
}

proptest! {
    /// A corrupted request either fails to parse (and closes) or is decided on what it
    /// now names, and its refusal decodes whole; cut anywhere, the same.
    #[test]
    fn a_corrupted_request_parses_or_fails_and_its_refusal_decodes(
        which: prop::sample::Index,
        at: prop::sample::Index,
        x in 1u8..,
        cut in 1usize..64,
    ) {
        let all = samples();
        let mut b = all[which.index(all.len())].clone();
        let i = 4 + at.index(b.len() - 4);
        b[i] ^= x;
        let whole = run(&b, &[], &mut deny);
        let split = run(&b, &[cut; 400], &mut deny);
        prop_assert_eq!(&whole.decided, &split.decided);
        prop_assert_eq!(&whole.to_client, &split.to_client);
        prop_assert!(whole.to_server.is_empty());
        let Ok(Some(q)) = kafka::parse(&b[4..]) else {
            return Ok(());
        };
        let names = q.topics.iter().flatten()
            .chain(q.groups.iter().flat_map(|g| g.topics.iter().flatten()))
            .filter_map(|t| t.name.clone())
            .chain(q.groups.iter().map(|g| g.id.clone()));
        let utf8 = names.into_iter().all(|n| std::str::from_utf8(&n).is_ok());
        if let Some((r, _)) = kafka::refusal(&q, &kafka::Cluster::default()) {
            prop_assert_eq!(&whole.to_client, &r);
            if utf8 && q.version >= oldest(q.key) {
                decode_any(q.key, q.version, &r);
            }
        }
    }
}
