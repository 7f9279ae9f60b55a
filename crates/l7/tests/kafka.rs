//! Kafka sessions: requests encoded by `kafka-protocol` (flexible and non-flexible
//! versions), old versions built by hand and by kafka-python, and the real client
//! requests of the pcap corpus (librdkafka and the Java console producer), checked
//! against what tshark dissects. Denied requests never reach the broker: a request whose
//! topics are all denied is answered as a broker would (`kafka/refusals.rs`), any other
//! denial closes the connection; any split of the stream decides the same.

#[path = "kafka/apis.rs"]
mod apis;
mod common;
#[path = "../../detect/tests/common/edit.rs"]
mod edit;
#[path = "kafka/refusals.rs"]
mod refusals;
#[path = "kafka/sessions.rs"]
mod sessions;

use common::pieces;
use std::collections::BTreeMap;

use bulkhead_l7::{KafkaSession, Output, Session, Verdict, kafka};
use bulkhead_policy::l7::{L7Detail, L7Request};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

/// Topics under `orders`, and requests that name none; any API but DeleteTopics.
fn policy(r: &L7Request) -> Verdict {
    let L7Detail::Kafka { api, topic } = &r.detail else {
        panic!("{r:?}")
    };
    Verdict {
        allowed: api != "deletetopics" && topic.as_deref().is_none_or(|t| t.starts_with("orders")),
    }
}

fn encode<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Vec<u8> {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("test-client")))
        .encode(&mut b, key.request_header_version(version))
        .unwrap();
    body.encode(&mut b, version).unwrap();
    [(b.len() as u32).to_be_bytes().to_vec(), b.to_vec()].concat()
}

fn topic(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn produce(version: i16, topics: &[&str]) -> Vec<u8> {
    let p = ProduceRequest::default().with_acks(1).with_topic_data(
        topics
            .iter()
            .map(|t| {
                TopicProduceData::default()
                    .with_name(topic(t))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(vec![7u8; 300]))),
                    ])
            })
            .collect(),
    );
    encode(ApiKey::Produce, version, 2, &p)
}

fn fetch(version: i16, topics: &[&str]) -> Vec<u8> {
    fetch_in(version, (0, -1), topics, &[])
}

/// A fetch in a fetch session (id, epoch) for partition 0 of each topic, forgetting
/// partition 0 of others.
fn fetch_in(v: i16, session: (i32, i32), topics: &[&str], forgotten: &[&str]) -> Vec<u8> {
    let f = FetchRequest::default()
        .with_session_id(session.0)
        .with_session_epoch(session.1)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(topic(t))
                        .with_partitions(vec![FetchPartition::default().with_partition(0)])
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            forgotten
                .iter()
                .map(|t| {
                    kafka_protocol::messages::fetch_request::ForgottenTopic::default()
                        .with_topic(topic(t))
                        .with_partitions(vec![0])
                })
                .collect(),
        );
    encode(ApiKey::Fetch, v, 3, &f)
}

fn metadata(version: i16, topics: Option<&[&str]>) -> Vec<u8> {
    let m = MetadataRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic(t))))
            .collect()
    }));
    encode(ApiKey::Metadata, version, 1, &m)
}

fn list_offsets(version: i16, t: &str) -> Vec<u8> {
    let l = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic(t))
            .with_partitions(vec![ListOffsetsPartition::default()]),
    ]);
    encode(ApiKey::ListOffsets, version, 4, &l)
}

fn delete_topics(v: i16, topics: &[&str]) -> Vec<u8> {
    use kafka_protocol::messages::{DeleteTopicsRequest, delete_topics_request::DeleteTopicState};
    let d = if v >= 6 {
        DeleteTopicsRequest::default().with_topics(
            topics
                .iter()
                .map(|t| DeleteTopicState::default().with_name(Some(topic(t))))
                .collect(),
        )
    } else {
        DeleteTopicsRequest::default().with_topic_names(topics.iter().map(|t| topic(t)).collect())
    };
    encode(ApiKey::DeleteTopics, v, 20, &d)
}

fn api_versions(version: i16) -> Vec<u8> {
    encode(
        ApiKey::ApiVersions,
        version,
        0,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    )
}

fn run(client: &[u8], cuts: &[usize], decide: &mut dyn FnMut(&L7Request) -> Verdict) -> Output {
    let mut sess = KafkaSession::new();
    let mut all = Output::default();
    for p in pieces(client, cuts) {
        all.merge(sess.client_bytes(&p, decide));
    }
    all
}

fn decided(out: &Output) -> Vec<(String, bool)> {
    out.decided
        .iter()
        .map(|d| (d.request.to_string(), d.allowed))
        .collect()
}

/// What a modern client sends: ApiVersions v3, Metadata v12, Produce v9 (flexible),
/// Fetch v12, ListOffsets v7, a consumer group's OffsetFetch v9 and OffsetCommit v8, and
/// an admin's CreateTopics v6.
fn conversation() -> Vec<u8> {
    [
        api_versions(3),
        metadata(12, Some(&["orders"])),
        produce(9, &["orders", "orders.eu"]),
        fetch(12, &["orders"]),
        list_offsets(7, "orders"),
        metadata(1, None),
        apis::offset_fetch_groups(9, &["orders"]),
        apis::offset_commit(8, &["orders.eu"]),
        apis::create_topics(6, &["orders.new"]),
    ]
    .concat()
}

/// [`conversation`] and a full fetch in a new fetch session, with a broker's answer to
/// each (the session reads the Metadata answers, which name `orders` by ID, and the last
/// Fetch answer, which opens session 77).
fn answered_conversation() -> (Vec<u8>, Vec<u8>) {
    use kafka_protocol::messages::{
        ApiVersionsResponse, CreateTopicsResponse, FetchResponse, ListOffsetsResponse,
        MetadataResponse, OffsetCommitResponse, OffsetFetchResponse,
        metadata_response::MetadataResponseTopic,
    };
    let id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8".parse().unwrap();
    let orders = MetadataResponseTopic::default().with_name(Some(topic("orders")));
    let meta = |v, t: MetadataResponseTopic| {
        response(
            ApiKey::Metadata,
            v,
            1,
            &MetadataResponse::default().with_topics(vec![t]),
        )
    };
    let client = [conversation(), fetch_in(12, (0, 0), &["orders"], &[])].concat();
    let server = [
        response(ApiKey::ApiVersions, 3, 0, &ApiVersionsResponse::default()),
        meta(12, orders.clone().with_topic_id(id)),
        response(ApiKey::Produce, 9, 2, &ProduceResponse::default()),
        response(ApiKey::Fetch, 12, 3, &FetchResponse::default()),
        response(ApiKey::ListOffsets, 7, 4, &ListOffsetsResponse::default()),
        meta(1, orders),
        response(ApiKey::OffsetFetch, 9, 9, &OffsetFetchResponse::default()),
        response(ApiKey::OffsetCommit, 8, 8, &OffsetCommitResponse::default()),
        response(
            ApiKey::CreateTopics,
            6,
            19,
            &CreateTopicsResponse::default(),
        ),
        response(
            ApiKey::Fetch,
            12,
            3,
            &FetchResponse::default().with_session_id(77),
        ),
    ]
    .concat();
    (client, server)
}

#[test]
fn requests_are_decided_on_api_and_every_topic_across_versions() {
    let client = conversation();
    let out = run(&client, &[], &mut policy);
    assert!(!out.close);
    assert_eq!(out.to_server, client, "allowed requests pass byte for byte");
    let s = |x: &str| (x.to_string(), true);
    assert_eq!(
        decided(&out),
        [
            s("kafka apiversions"),
            s("kafka metadata orders"),
            s("kafka produce orders"),
            s("kafka produce orders.eu"),
            s("kafka fetch orders"),
            s("kafka listoffsets orders"),
            s("kafka metadata"),
            s("kafka offsetfetch orders"),
            s("kafka offsetfetch"),
            s("kafka offsetcommit orders.eu"),
            s("kafka createtopics orders.new"),
        ]
    );
    for v in [3, 5, 7, 8, 9, 11, 12] {
        let r = kafka::requests(&produce(v, &["orders.x"])[4..]).unwrap();
        assert_eq!(r[0].to_string(), "kafka produce orders.x", "v{v}");
    }
    // Version 13 names topics by ID: only a rule for any topic can allow it.
    let id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8".parse().unwrap();
    let p = ProduceRequest::default()
        .with_topic_data(vec![TopicProduceData::default().with_topic_id(id)]);
    let r = kafka::requests(&encode(ApiKey::Produce, 13, 1, &p)[4..]).unwrap();
    assert_eq!(
        r[0].to_string(),
        "kafka produce topic-id:6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    );
    for v in [4, 7, 11, 12] {
        let r = kafka::requests(&fetch(v, &["orders.y"])[4..]).unwrap();
        assert_eq!(r[0].to_string(), "kafka fetch orders.y", "v{v}");
    }
    for v in 0..=13 {
        let r = kafka::requests(&metadata(v, Some(&["orders.z"]))[4..]).unwrap();
        assert_eq!(r[0].to_string(), "kafka metadata orders.z", "v{v}");
    }
}

/// Every version `kafka-protocol` encodes, with several topics and partitions and every
/// field set, parses to the topics it was given.
#[test]
fn every_version_parses_to_the_encoded_topics() {
    let names = ["a.one", "b-two", "c_three"];
    let want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let parts = |n: i32| -> Vec<FetchPartition> {
        (0..n)
            .map(|i| {
                FetchPartition::default()
                    .with_partition(i)
                    .with_fetch_offset(1 << 40)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect()
    };
    let got = |b: &[u8]| kafka::topics(&b[4..]).unwrap();
    for v in 3..=12 {
        let p = ProduceRequest::default()
            .with_transactional_id(Some(StrBytes::from_static_str("tx").into()))
            .with_topic_data(
                names
                    .iter()
                    .map(|t| {
                        TopicProduceData::default()
                            .with_name(topic(t))
                            .with_partition_data(
                                (0..3)
                                    .map(|i| {
                                        PartitionProduceData::default()
                                            .with_index(i)
                                            .with_records(Some(Bytes::from(vec![1u8; 200])))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        assert_eq!(
            got(&encode(ApiKey::Produce, v, 1, &p)),
            want,
            "produce v{v}"
        );
    }
    for v in 4..=12 {
        let mut f = FetchRequest::default().with_topics(
            names
                .iter()
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(topic(t))
                        .with_partitions(parts(2))
                })
                .collect(),
        );
        if v >= 7 {
            f = f.with_forgotten_topics_data(vec![
                kafka_protocol::messages::fetch_request::ForgottenTopic::default()
                    .with_topic(topic("gone"))
                    .with_partitions(vec![1, 2, 3]),
            ]);
        }
        if v >= 11 {
            f = f.with_rack_id(StrBytes::from_static_str("rack-1"));
        }
        let mut w = want.clone();
        if v >= 7 {
            w.push("gone".into());
        }
        assert_eq!(got(&encode(ApiKey::Fetch, v, 1, &f)), w, "fetch v{v}");
    }
    for v in 1..=10 {
        let l = ListOffsetsRequest::default().with_topics(
            names
                .iter()
                .map(|t| {
                    ListOffsetsTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![ListOffsetsPartition::default(); 2])
                })
                .collect(),
        );
        assert_eq!(
            got(&encode(ApiKey::ListOffsets, v, 1, &l)),
            want,
            "listoffsets v{v}"
        );
    }
    for v in 0..=13 {
        assert_eq!(got(&metadata(v, Some(&names))), want, "metadata v{v}");
        if v >= 1 {
            assert!(got(&metadata(v, None)).is_empty(), "metadata v{v}");
        }
    }
    for v in 1..=6 {
        assert_eq!(got(&delete_topics(v, &names)), want, "deletetopics v{v}");
    }
}

#[test]
fn a_denied_topic_closes_the_connection_before_any_byte_of_it() {
    let first = produce(3, &["orders"]);
    let bad = produce(9, &["orders", "payroll"]);
    let client = [first.clone(), bad, fetch(12, &["orders"])].concat();
    let out = run(&client, &[5; 1000], &mut policy);
    assert!(out.close);
    assert_eq!(out.to_server, first);
    assert_eq!(
        decided(&out),
        [
            ("kafka produce orders".to_string(), true),
            ("kafka produce orders".to_string(), true),
            ("kafka produce payroll".to_string(), false),
        ]
    );
    assert_eq!(
        out.decided[1].refusal.as_deref(),
        Some("connection closed (another topic of the request was denied)")
    );
    assert!(out.to_client.is_empty());
}

fn produce_acks(version: i16, topics: &[&str], acks: i16) -> Vec<u8> {
    let mut b = produce(version, topics);
    // acks follows the header and, from v3, the (null) transactional id.
    let at = 4 + 8 + 2 + "test-client".len() + if version >= 9 { 1 } else { 0 };
    let at = at
        + match version {
            0..=2 => 0,
            3..=8 => 2,
            _ => 1,
        };
    b[at..at + 2].copy_from_slice(&acks.to_be_bytes());
    b
}

/// Decode a response of the proxy's with kafka-protocol, every byte of it: (correlation
/// id, body).
fn decode<T: Decodable>(key: ApiKey, version: i16, b: &[u8]) -> (i32, T) {
    let n = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
    assert_eq!(n, b.len() - 4);
    let mut buf = Bytes::copy_from_slice(&b[4..]);
    let h = ResponseHeader::decode(&mut buf, key.response_header_version(version)).unwrap();
    let r = T::decode(&mut buf, version).unwrap();
    assert!(
        buf.is_empty(),
        "{key:?} v{version}: {} bytes left",
        buf.len()
    );
    (h.correlation_id, r)
}

#[test]
fn a_produce_to_denied_topics_gets_topic_authorization_failed_in_order() {
    let first = produce(3, &["orders"]);
    let denied = produce(9, &["payroll", "audit"]);
    let after = fetch(12, &["orders"]);
    let mut sess = KafkaSession::new();
    let mut out = Output::default();
    for p in pieces(&[first.clone(), denied, after.clone()].concat(), &[7; 1000]) {
        out.merge(sess.client_bytes(&p, &mut policy));
    }
    assert!(!out.close);
    assert_eq!(out.to_server, [first, after].concat());
    assert!(
        out.to_client.is_empty(),
        "the broker's answer to the first comes first"
    );
    let refusals: Vec<_> = out.decided.iter().map(|d| d.refusal.clone()).collect();
    assert_eq!(
        refusals,
        [
            None,
            Some("TOPIC_AUTHORIZATION_FAILED (29)".to_string()),
            Some("TOPIC_AUTHORIZATION_FAILED (29)".to_string()),
            None
        ]
    );
    // The broker answers the Produce (split), then the Fetch.
    let r1 = [vec![0, 0, 0, 6], vec![0, 0, 0, 2, 9, 9]].concat();
    let r2 = [vec![0, 0, 0, 5], vec![0, 0, 0, 3, 7]].concat();
    let a = sess.server_bytes(&r1[..5]);
    assert_eq!(a.to_client, r1[..5]);
    let b = sess.server_bytes(&[&r1[5..], &r2[..]].concat());
    assert_eq!(b.to_client[..5], r1[5..]);
    let ours = &b.to_client[5..b.to_client.len() - r2.len()];
    assert_eq!(b.to_client[b.to_client.len() - r2.len()..], r2);
    let (corr, resp): (_, ProduceResponse) = decode(ApiKey::Produce, 9, ours);
    assert_eq!(corr, 2);
    let got: Vec<(String, Vec<(i32, i16)>)> = resp
        .responses
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partition_responses
                    .iter()
                    .map(|p| (p.index, p.error_code))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("payroll".to_string(), vec![(0, 29)]),
            ("audit".to_string(), vec![(0, 29)])
        ]
    );
    assert!(
        resp.responses[0].partition_responses[0]
            .error_message
            .as_ref()
            .unwrap()
            .contains("payroll is not allowed by policy")
    );
}

#[test]
fn the_refusal_decodes_in_every_produce_version_and_acks_0_gets_none() {
    for v in 3..=12 {
        let mut sess = KafkaSession::new();
        let out = sess.client_bytes(&produce(v, &["payroll"]), &mut policy);
        assert!(!out.close && out.to_server.is_empty(), "v{v}");
        let (corr, resp): (_, ProduceResponse) = decode(ApiKey::Produce, v, &out.to_client);
        assert_eq!(corr, 2, "v{v}");
        assert_eq!(resp.responses[0].name.to_string(), "payroll", "v{v}");
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 29);
    }
    for v in [3, 5, 9, 12] {
        let mut sess = KafkaSession::new();
        let out = sess.client_bytes(&produce_acks(v, &["payroll"], 0), &mut policy);
        assert!(
            !out.close && out.to_server.is_empty() && out.to_client.is_empty(),
            "v{v}"
        );
        assert_eq!(
            out.decided[0].refusal.as_deref(),
            Some("dropped (acks=0: no response)")
        );
        // And an allowed acks=0 produce owes nothing: a refusal after it goes at once.
        let mut sess = KafkaSession::new();
        let out = sess.client_bytes(
            &[produce_acks(v, &["orders"], 0), produce(9, &["payroll"])].concat(),
            &mut policy,
        );
        assert!(!out.to_client.is_empty(), "v{v}");
    }
}

#[test]
fn a_denied_api_without_topics_is_decided_on_its_head() {
    let mut seen = Vec::new();
    let client = [api_versions(3), vec![0, 0, 0, 20, 0, 60, 0, 0]].concat();
    let out = run(&client, &[], &mut |r| {
        seen.push(r.to_string());
        Verdict {
            allowed: r.to_string() == "kafka apiversions",
        }
    });
    assert!(out.close);
    assert_eq!(out.to_server, api_versions(3));
    assert_eq!(seen, ["kafka apiversions", "kafka describecluster"]);
}

#[test]
fn old_versions_are_parsed_by_hand() {
    let s = |x: &str| {
        let mut v = (x.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(x.as_bytes());
        v
    };
    let head = |key: i16, v: i16| {
        [
            key.to_be_bytes().to_vec(),
            v.to_be_bytes().to_vec(),
            9i32.to_be_bytes().to_vec(),
            s("old"),
        ]
        .concat()
    };
    // Produce v2: acks, timeout, [topic, [partition, records]].
    let produce = [
        head(0, 2),
        vec![0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 2],
        s("orders"),
        vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
        s("audit"),
        vec![0, 0, 0, 0],
    ]
    .concat();
    let topics = |b: &[u8]| -> Vec<String> {
        kafka::requests(b)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect()
    };
    assert_eq!(
        topics(&produce),
        ["kafka produce orders", "kafka produce audit"]
    );
    // Fetch v0: replica, max wait, min bytes, [topic, [partition, offset, max bytes]].
    let fetch = [
        head(1, 0),
        vec![255, 255, 255, 255, 0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 1],
        s("orders"),
        vec![0, 0, 0, 1],
        vec![0; 16],
    ]
    .concat();
    assert_eq!(topics(&fetch), ["kafka fetch orders"]);
    let list = [
        head(2, 0),
        vec![255, 255, 255, 255, 0, 0, 0, 1],
        s("t1"),
        vec![0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(topics(&list), ["kafka listoffsets t1"]);
    assert!(kafka::requests(&produce[..produce.len() - 1]).is_err());
}

#[test]
fn an_oversized_request_is_refused_unread() {
    let mut big = 20_000_000u32.to_be_bytes().to_vec();
    big.extend_from_slice(&[0, 0, 0, 9]);
    let out = run(&big, &[], &mut policy);
    assert!(out.close && out.to_server.is_empty());
}

/// Sensors scan what a Kafka session passes as raw bytes (`packet`): a blocking finding
/// in a produced record closes the connection before the request reaches the broker.
#[test]
fn sensors_scan_kafka_payloads_and_a_blocking_finding_closes() {
    use bulkhead_policy::l7::AppProtocol;
    use common::Sensors;
    use std::sync::Arc;
    let secret = {
        let p = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_records(Some(Bytes::from_static(b"..SECRET.."))),
                ]),
        ]);
        encode(ApiKey::Produce, 3, 9, &p)
    };
    let client = [produce(3, &["orders"]), secret].concat();
    for block in [false, true] {
        let mut sess =
            bulkhead_l7::session_for(AppProtocol::Kafka, Some(Arc::new(Sensors(block)))).unwrap();
        let out = sess.client_bytes(&client, &mut policy);
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.close, block);
        assert_eq!(out.to_server.is_empty(), block);
    }
}

/// A broker's response, size included.
fn response<T: Encodable>(key: ApiKey, v: i16, corr: i32, body: &T) -> Vec<u8> {
    let mut b = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut b, key.response_header_version(v))
        .unwrap();
    body.encode(&mut b, v).unwrap();
    [(b.len() as u32).to_be_bytes().to_vec(), b.to_vec()].concat()
}

/// A broker's Metadata response (correlation id 1).
fn metadata_answer(v: i16, resp: &kafka_protocol::messages::MetadataResponse) -> Vec<u8> {
    response(ApiKey::Metadata, v, 1, resp)
}

/// Fetch v13+ names topics by ID: the names the broker gave them in a Metadata response
/// on the connection decide them; an ID it did not name is decided as `topic-id:UUID`.
#[test]
fn topic_ids_are_named_by_the_broker_metadata_on_the_connection() {
    use kafka_protocol::messages::{
        BrokerId, MetadataResponse,
        metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        },
    };
    let orders = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    let payroll = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";
    for v in 10..=13 {
        let resp = MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("b1"))
                    .with_port(9092)
                    .with_rack(Some(StrBytes::from_static_str("r1"))),
            ])
            .with_cluster_id(Some(StrBytes::from_static_str("c1")))
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(topic("orders")))
                    .with_topic_id(orders.parse().unwrap())
                    .with_partitions(vec![
                        MetadataResponsePartition::default()
                            .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                            .with_isr_nodes(vec![BrokerId(1)]),
                        MetadataResponsePartition::default().with_partition_index(1),
                    ]),
            ]);
        let answer = metadata_answer(v, &resp);
        assert_eq!(
            kafka::metadata_ids(v, &answer[4..]).unwrap(),
            [(format!("topic-id:{orders}"), "orders".to_string())],
            "v{v}"
        );

        let fetch_id = |id: &str| {
            let f = FetchRequest::default().with_topics(vec![
                FetchTopic::default()
                    .with_topic_id(id.parse().unwrap())
                    .with_partitions(vec![FetchPartition::default()]),
            ]);
            encode(ApiKey::Fetch, 13, 3, &f)
        };
        let mut sess = KafkaSession::new();
        let mut out = sess.client_bytes(&metadata(v, Some(&["orders"])), &mut policy);
        for p in pieces(&answer, &[5; 1000]) {
            out.merge(sess.server_bytes(&p));
        }
        assert_eq!(out.to_client, answer);
        out.merge(sess.client_bytes(&fetch_id(orders), &mut policy));
        out.merge(sess.client_bytes(&fetch_id(payroll), &mut policy));
        assert_eq!(
            decided(&out),
            [
                ("kafka metadata orders".to_string(), true),
                ("kafka fetch orders".to_string(), true),
                (format!("kafka fetch topic-id:{payroll}"), false),
            ],
            "v{v}"
        );
        // The denied fetch is answered in the broker's place; the connection goes on.
        assert!(!out.close);
        assert_eq!(
            out.decided[2].refusal.as_deref(),
            Some("TOPIC_AUTHORIZATION_FAILED (29)")
        );
    }
}

/// Client-to-broker payloads of each TCP connection to port 9092 in a capture.
fn client_streams(path: &str) -> Vec<(u16, Vec<u8>)> {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let bytes = std::fs::read(path).unwrap();
    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let mut flows: BTreeMap<u16, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    while let Some(b) = r.next_block() {
        let Ok(Block::EnhancedPacket(p)) = b else {
            continue;
        };
        let Ok(pkt) = etherparse::SlicedPacket::from_ethernet(&p.data) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = pkt.transport else {
            continue;
        };
        if tcp.destination_port() == 9092 && !tcp.payload().is_empty() {
            flows
                .entry(tcp.source_port())
                .or_default()
                .insert(tcp.sequence_number(), tcp.payload().to_vec());
        }
    }
    flows
        .into_iter()
        .map(|(port, segs)| (port, segs.into_values().flatten().collect()))
        .collect()
}

const CORPUS: &str = "../../../shared/corpora/pcap/ndpi/kafka.pcapng";

/// `tshark -r kafka.pcapng -Y "kafka && tcp.dstport==9092" -T fields -e tcp.srcport
/// -e kafka.api_key -e kafka.api_version -e kafka.topic_name`: librdkafka's ApiVersions
/// v0, Metadata v2 and Produce v3, and the Java console producer's ApiVersions v3,
/// InitProducerId v4, Metadata v12 and Produce v9. tshark shows the v12 Metadata topic
/// as null and no topic for Produce v9 (it does not dissect those versions' compact
/// strings); the bytes name `sampleTopic`, as the broker's Metadata response in the same
/// capture does.
const TSHARK: &[(u16, &[&str])] = &[
    (
        38176,
        &[
            "kafka produce LB_MAIN_LOG_INPUT",
            "kafka produce LB_MAIN_LOG_INPUT",
        ],
    ),
    (40042, &["kafka metadata LB_MAIN_LOG_INPUT"]),
    (
        46136,
        &[
            "kafka apiversions",
            "kafka initproducerid",
            "kafka metadata sampleTopic",
            "kafka produce sampleTopic",
        ],
    ),
    (
        49280,
        &["kafka apiversions", "kafka metadata LB_MAIN_LOG_INPUT"],
    ),
    (53052, &["kafka apiversions"]),
    (53768, &["kafka metadata LB_MAIN_LOG_INPUT"]),
    (56556, &["kafka apiversions"]),
    (58052, &["kafka metadata LB_MAIN_LOG_INPUT"]),
    (58300, &["kafka apiversions"]),
];

#[test]
fn real_client_requests_from_the_corpus_match_tshark() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    if !path.exists() {
        eprintln!("skipped: {} is not here", path.display());
        return;
    }
    let streams = client_streams(path.to_str().unwrap());
    assert_eq!(streams.len(), TSHARK.len());
    for ((port, bytes), (want_port, want)) in streams.iter().zip(TSHARK) {
        assert_eq!(port, want_port);
        let out = run(bytes, &[], &mut |_| Verdict { allowed: true });
        let got: Vec<String> = out.decided.iter().map(|d| d.request.to_string()).collect();
        assert_eq!(&got, want, "port {port}");
        assert!(!out.close, "port {port}");
        assert_eq!(&out.to_server, bytes);
        // Split anywhere: the same.
        let cut = run(bytes, &[3; 500], &mut |_| Verdict { allowed: true });
        assert_eq!(cut.decided, out.decided);
    }
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(cc in proptest::collection::vec(1usize..64, 0..120)) {
        let client = conversation();
        let whole = run(&client, &[], &mut policy);
        let cut = run(&client, &cc, &mut policy);
        prop_assert_eq!(&cut.to_server, &whole.to_server);
        prop_assert_eq!(&cut.decided, &whole.decided);
        prop_assert_eq!(cut.close, whole.close);
    }

    #[test]
    fn truncations_decide_a_prefix(at in 0usize..2000) {
        let client = conversation();
        let at = at.min(client.len());
        let whole = run(&client, &[], &mut policy);
        let part = run(&client[..at], &[11; 300], &mut policy);
        prop_assert!(!part.close);
        prop_assert!(whole.decided.starts_with(&part.decided));
        prop_assert!(whole.to_server.starts_with(&part.to_server));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        c in proptest::collection::vec(any::<u8>(), 0..2048),
        sv in proptest::collection::vec(any::<u8>(), 0..2048),
        cut in 1usize..100,
    ) {
        let _ = run(&c, &[cut; 100], &mut policy);
        let _ = kafka::requests(&c);
        if let Ok(Some(q)) = kafka::parse(&c) {
            let _ = kafka::refusal(&q, &kafka::Cluster::default());
        }
        // A session owing answers (a refusal queued behind the broker's) fed any bytes.
        let mut sess = KafkaSession::new();
        let client = [produce(3, &["orders"]), produce(9, &["payroll"])].concat();
        let mut out = sess.client_bytes(&client, &mut policy);
        for p in pieces(&sv, &[cut; 100]) {
            out.merge(sess.server_bytes(&p));
        }
        prop_assert!(out.to_client.len() >= sv.len());
    }

    #[test]
    fn a_corrupted_conversation_never_panics(i in 0usize..2000, v: u8, cut in 1usize..64) {
        let mut client = conversation();
        let n = client.len();
        client[i % n] ^= v;
        let _ = run(&client, &[cut; 300], &mut policy);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cut in 1usize..64) {
        let (mut client, mut server) = answered_conversation();
        edit::apply_both(&edits, &mut client, &mut server);
        let mut sess = KafkaSession::new();
        for p in pieces(&client, &[cut; 300]) {
            sess.client_bytes(&p, &mut policy);
        }
        for p in pieces(&server, &[cut; 300]) {
            sess.server_bytes(&p);
        }
    }
}
