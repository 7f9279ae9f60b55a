//! OffsetCommit, OffsetFetch and CreateTopics: the topics they name, in every version
//! `kafka-protocol` encodes, the topic-ID versions (v10) built by hand from the schemas,
//! and the consumer group's requests on one connection.

use super::*;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest,
    create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig},
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
};

fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

/// An OffsetCommit for partitions 0 and 5 of each topic.
pub fn offset_commit(v: i16, topics: &[&str]) -> Vec<u8> {
    let parts = [0, 5].map(|i| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(i)
            .with_committed_offset(1 << 33)
            .with_committed_leader_epoch(if v >= 6 { 4 } else { -1 })
            .with_committed_metadata(Some(s("meta")))
    });
    let o = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("member-1"))
        .with_group_instance_id((v >= 7).then(|| s("instance-1")))
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(parts.to_vec())
                })
                .collect(),
        );
    encode(ApiKey::OffsetCommit, v, 8, &o)
}

/// An OffsetFetch (v1-7) for partitions 0 and 5 of each topic, or for all topics.
pub fn offset_fetch(v: i16, topics: Option<&[&str]>) -> Vec<u8> {
    let o = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_require_stable(v >= 7)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic(t))
                        .with_partition_indexes(vec![0, 5])
                })
                .collect()
        }));
    encode(ApiKey::OffsetFetch, v, 9, &o)
}

/// An OffsetFetch v8+: `group-1` for partitions 0 and 5 of each topic, `group-2` for
/// all its topics.
pub fn offset_fetch_groups(v: i16, topics: &[&str]) -> Vec<u8> {
    let group = |id: &'static str, topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_member_id((v >= 9).then(|| s("member-1")))
            .with_member_epoch(if v >= 9 { 7 } else { -1 })
            .with_topics(topics)
    };
    let named = topics
        .iter()
        .map(|t| {
            OffsetFetchRequestTopics::default()
                .with_name(topic(t))
                .with_partition_indexes(vec![0, 5])
        })
        .collect();
    let o = OffsetFetchRequest::default()
        .with_groups(vec![group("group-1", Some(named)), group("group-2", None)]);
    encode(ApiKey::OffsetFetch, v, 9, &o)
}

pub fn create_topics(v: i16, topics: &[&str]) -> Vec<u8> {
    let c = CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_validate_only(true)
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic(t))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_assignments(vec![
                            CreatableReplicaAssignment::default()
                                .with_partition_index(0)
                                .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                        ])
                        .with_configs(vec![
                            CreatableTopicConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(Some(s("compact"))),
                            CreatableTopicConfig::default().with_name(s("x")),
                        ])
                })
                .collect(),
        );
    encode(ApiKey::CreateTopics, v, 19, &c)
}

/// A flexible request built by hand: size, header v2 (client id `c`), body.
pub fn by_hand(key: i16, v: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let b = [
        key.to_be_bytes().as_slice(),
        &v.to_be_bytes(),
        &corr.to_be_bytes(),
        &[0, 1, b'c', 0],
        body,
    ]
    .concat();
    [(b.len() as u32).to_be_bytes().to_vec(), b].concat()
}

pub const ID: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];
pub const ID_LABEL: &str = "topic-id:6ba7b810-9dad-11d1-80b4-00c04fd430c8";

/// OffsetCommit v10 (topics by ID): group, generation, member, no instance; one topic,
/// partition 0.
pub fn offset_commit_v10() -> Vec<u8> {
    let body = [
        &[2, b'g', 0, 0, 0, 3, 2, b'm', 0, 2][..],
        &ID,
        &[2, 0, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0, 0, 9, 255, 255, 255, 255, 0, 0, 0, 0],
    ]
    .concat();
    by_hand(8, 10, 8, &body)
}

/// OffsetFetch v10 (topics by ID): one group, no member, epoch -1, one topic with
/// partition 0; not require stable.
pub fn offset_fetch_v10() -> Vec<u8> {
    let body = [
        &[2, 2, b'g', 0, 255, 255, 255, 255, 2][..],
        &ID,
        &[2, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    by_hand(9, 10, 9, &body)
}

#[test]
fn offset_commit_fetch_and_create_topics_are_decided_on_each_topic_in_every_version() {
    let names = ["a.one", "b-two", "c_three"];
    let want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let got = |b: &[u8]| kafka::topics(&b[4..]).unwrap();
    let reqs = |b: &[u8]| -> Vec<String> {
        kafka::requests(&b[4..])
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect()
    };
    let parts = |b: &[u8]| -> Vec<Vec<i32>> {
        let q = kafka::parse(&b[4..]).unwrap().unwrap();
        q.topics
            .iter()
            .flatten()
            .chain(q.groups.iter().flat_map(|g| g.topics.iter().flatten()))
            .map(|t| t.parts.clone())
            .collect()
    };
    for v in 2..=9 {
        let b = offset_commit(v, &names);
        assert_eq!(got(&b), want, "offsetcommit v{v}");
        assert_eq!(parts(&b), vec![vec![0, 5]; 3], "offsetcommit v{v}");
    }
    for v in 1..=7 {
        let b = offset_fetch(v, Some(&names));
        assert_eq!(got(&b), want, "offsetfetch v{v}");
        assert_eq!(parts(&b), vec![vec![0, 5]; 3], "offsetfetch v{v}");
    }
    for v in 2..=7 {
        // Null topics: all of the group's, decided without a topic.
        assert_eq!(reqs(&offset_fetch(v, None)), ["kafka offsetfetch"], "v{v}");
    }
    for v in 8..=9 {
        let b = offset_fetch_groups(v, &names);
        assert_eq!(got(&b), want, "offsetfetch v{v}");
        let q = kafka::parse(&b[4..]).unwrap().unwrap();
        assert_eq!(q.groups.len(), 2);
        assert_eq!(q.groups[0].id, b"group-1");
        assert_eq!(q.groups[1].topics, None);
        // The second group asks for all its topics: one decision without a topic too.
        assert_eq!(
            reqs(&b),
            [
                "kafka offsetfetch a.one",
                "kafka offsetfetch b-two",
                "kafka offsetfetch c_three",
                "kafka offsetfetch"
            ],
            "v{v}"
        );
    }
    for v in 2..=7 {
        assert_eq!(got(&create_topics(v, &names)), want, "createtopics v{v}");
    }
    assert_eq!(
        reqs(&offset_commit_v10()),
        [format!("kafka offsetcommit {ID_LABEL}")]
    );
    assert_eq!(
        reqs(&offset_fetch_v10()),
        [format!("kafka offsetfetch {ID_LABEL}")]
    );
    assert_eq!(parts(&offset_fetch_v10()), [vec![0]]);
    // Versions past the newest known are never guessed at.
    for (key, v) in [(8, 11), (9, 11), (19, 8)] {
        assert!(kafka::requests(&by_hand(key, v, 1, &[0; 40])[4..]).is_err());
    }
    // A cut anywhere before the fields after the topics (their tail) fails to parse
    // instead of deciding fewer topics.
    for (b, tail) in [
        (offset_commit(8, &names), 1),
        (offset_fetch_groups(9, &names), 2),
        (create_topics(5, &names), 6),
        (offset_commit_v10(), 1),
    ] {
        for n in 8..b.len() - 4 - tail {
            assert!(kafka::parse(&b[4..4 + n]).is_err(), "cut at {n}");
        }
        assert!(kafka::parse(&b[4..]).is_ok());
    }
}

/// A consumer group's requests pass byte for byte; a commit to a denied topic is
/// answered in its place, after the broker's answer to the fetch before it, and a
/// commit naming an allowed and a denied topic closes the connection.
#[test]
fn a_consumer_group_is_decided_per_topic_and_refused_in_order() {
    let allowed = [
        offset_fetch_groups(8, &["orders"]),
        fetch(12, &["orders"]),
        offset_commit(9, &["orders"]),
    ]
    .concat();
    let denied = offset_commit(8, &["payroll"]);
    let mixed = offset_commit(8, &["orders", "payroll"]);
    let mut sess = KafkaSession::new();
    let mut out = Output::default();
    for p in pieces(&[allowed.clone(), denied].concat(), &[9; 1000]) {
        out.merge(sess.client_bytes(&p, &mut policy));
    }
    assert!(!out.close);
    assert_eq!(out.to_server, allowed);
    assert!(out.to_client.is_empty(), "three broker answers come first");
    assert_eq!(
        decided(&out),
        [
            ("kafka offsetfetch orders".to_string(), true),
            ("kafka offsetfetch".to_string(), true),
            ("kafka fetch orders".to_string(), true),
            ("kafka offsetcommit orders".to_string(), true),
            ("kafka offsetcommit payroll".to_string(), false),
        ]
    );
    // The broker answers the three (sizes and bodies are opaque to the proxy).
    let answer = |corr: u8| vec![0, 0, 0, 5, 0, 0, 0, corr, 1];
    let mut back = Output::default();
    for corr in [9, 3, 8] {
        back.merge(sess.server_bytes(&answer(corr)));
    }
    let ours = &back.to_client[27..];
    assert_eq!(
        back.to_client[..27],
        [answer(9), answer(3), answer(8)].concat()
    );
    let (corr, r): (i32, kafka_protocol::messages::OffsetCommitResponse) =
        decode(ApiKey::OffsetCommit, 8, ours);
    assert_eq!(corr, 8);
    assert_eq!(r.topics[0].name.to_string(), "payroll");
    let out = sess.client_bytes(&mixed, &mut policy);
    assert!(out.close && out.to_server.is_empty() && out.to_client.is_empty());
    assert_eq!(
        out.decided[0].refusal.as_deref(),
        Some("connection closed (another topic of the request was denied)")
    );
}
