//! Kafka: a request header (size, API key, API version, correlation id, client id).
//!
//! Hand-written: `kafka-protocol` decodes whole, versioned messages once the API is
//! known; detection reads only the fixed header, from a prefix, and judges plausibility.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{be16, be32, detail, printable, yes};

/// API keys 0-68 by name (what events show).
const APIS: &[&str] = &[
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "LeaderAndIsr",
    "StopReplica",
    "UpdateMetadata",
    "ControlledShutdown",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "SyncGroup",
    "DescribeGroups",
    "ListGroups",
    "SaslHandshake",
    "ApiVersions",
    "CreateTopics",
    "DeleteTopics",
    "DeleteRecords",
    "InitProducerId",
    "OffsetForLeaderEpoch",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "EndTxn",
    "WriteTxnMarkers",
    "TxnOffsetCommit",
    "DescribeAcls",
    "CreateAcls",
    "DeleteAcls",
    "DescribeConfigs",
    "AlterConfigs",
    "AlterReplicaLogDirs",
    "DescribeLogDirs",
    "SaslAuthenticate",
    "CreatePartitions",
    "CreateDelegationToken",
    "RenewDelegationToken",
    "ExpireDelegationToken",
    "DescribeDelegationToken",
    "DeleteGroups",
    "ElectLeaders",
    "IncrementalAlterConfigs",
    "AlterPartitionReassignments",
    "ListPartitionReassignments",
    "OffsetDelete",
    "DescribeClientQuotas",
    "AlterClientQuotas",
    "DescribeUserScramCredentials",
    "AlterUserScramCredentials",
    "Vote",
    "BeginQuorumEpoch",
    "EndQuorumEpoch",
    "DescribeQuorum",
    "AlterPartition",
    "UpdateFeatures",
    "Envelope",
    "FetchSnapshot",
    "DescribeCluster",
    "DescribeProducers",
    "BrokerRegistration",
    "BrokerHeartbeat",
    "UnregisterBroker",
    "DescribeTransactions",
    "ListTransactions",
    "AllocateProducerIds",
    "ConsumerGroupHeartbeat",
];
/// No API has reached this many versions.
const MAX_API_VERSION: u16 = 20;
/// Requests are taken to be under 16 MiB (a size whose first byte is 0): a broker takes
/// up to 100 MiB (socket.request.max.bytes), but its records up to 1 MiB
/// (message.max.bytes), and a larger size is more likely another protocol's first bytes
/// (OpenFlow's version and type read as a 67 MB Produce request).
const MAX_REQUEST: usize = (16 << 20) - 1;
/// Header through the client id's length.
const HEADER: usize = 14;

/// A request header: size, api key, api version, correlation id, client id (nullable).
pub(crate) fn request(b: &[u8]) -> Check {
    // Sizes are below 16 MiB: the first byte is 0.
    if b.len() < HEADER {
        let ok = b.first().is_none_or(|&c| c == 0)
            && b.get(4).is_none_or(|&c| c == 0)
            && b.get(5).is_none_or(|&k| usize::from(k) < APIS.len())
            && b.get(6).is_none_or(|&c| c == 0);
        return if ok { Check::More } else { Check::No };
    }
    let size = be32(b, 0).unwrap_or(0) as usize;
    let (key, version) = (
        be16(b, 4).unwrap_or(u16::MAX),
        be16(b, 6).unwrap_or(u16::MAX),
    );
    let client_len = be16(b, 12).unwrap_or(0) as i16;
    if !(HEADER - 4..=MAX_REQUEST).contains(&size)
        || usize::from(key) >= APIS.len()
        || version > MAX_API_VERSION
        || client_len < -1
        || HEADER - 4 + client_len.max(0) as usize > size
    {
        return Check::No;
    }
    let client = if client_len > 0 {
        let Some(id) = b.get(HEADER..HEADER + client_len as usize) else {
            return Check::More;
        };
        if !printable(id) {
            return Check::No;
        }
        Some(String::from_utf8_lossy(id).into_owned())
    } else {
        None
    };
    let d = detail([
        ("api", json!(APIS[usize::from(key)])),
        ("api_version", json!(version)),
        ("client_id", json!(client)),
    ]);
    // Every client library names itself (`rdkafka`, `sarama`, `producer-1`); without a
    // client id the header is a few small numbers that other binary protocols' first
    // messages also fit (SMPP's bind_transmitter reads as a Produce request), so the
    // server's answer must confirm it ([`answered`]).
    if client.is_some() {
        yes(AppProtocol::Kafka, d)
    } else {
        Check::Likely(AppProtocol::Kafka, d)
    }
}

/// Does the server's answer confirm a request without a client id: does it begin with
/// a response header (size, then the request's correlation id)? None while shorter
/// than that header.
pub(crate) fn answered(request: &[u8], answer: &[u8]) -> Option<bool> {
    let (size, correlation) = (be32(answer, 0)?, be32(answer, 4)?);
    Some(size >= 4 && Some(correlation) == be32(request, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_request_from_librdkafka() {
        let req = b"\x00\x00\x00\x28\x00\x03\x00\x02\x00\x00\x00\x8e\x00\x07rdkafka\x00\x00\x00\x01\x00\x11LB_MAIN_LOG_INPUT";
        match request(req) {
            Check::Yes(AppProtocol::Kafka, d) => {
                assert_eq!(d["api"], "Metadata");
                assert_eq!(d["api_version"], 2);
                assert_eq!(d["client_id"], "rdkafka");
            }
            c => panic!("{c:?}"),
        }
        for n in 0..20 {
            assert_eq!(request(&req[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn without_a_client_id_the_answer_decides() {
        let req = b"\x00\x00\x00\x0a\x00\x12\x00\x03\x00\x00\x00\x01\xff\xff";
        assert!(matches!(request(req), Check::Likely(AppProtocol::Kafka, _)));
        // ApiVersions' answer: size, correlation id 1, error code 0...
        assert_eq!(answered(req, b"\x00\x00\x01\x5a"), None);
        assert_eq!(
            answered(req, b"\x00\x00\x01\x5a\x00\x00\x00\x01\x00\x00"),
            Some(true)
        );
        // SMPP (nDPI's smpp_in_general.pcap): bind_transmitter, an empty client id by
        // Kafka's reading, then bind_transmitter_resp (command id 0x80000002).
        let bind = b"\x00\x00\x00\x28\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01abhik\x00password\x00SMPP\x00\x01\x00\x00\x00";
        assert!(matches!(request(bind), Check::Likely(..)));
        let resp = b"\x00\x00\x00\x15\x80\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01SMSC\x00";
        assert_eq!(answered(bind, resp), Some(false));
    }

    #[test]
    fn not_kafka() {
        // Unknown API key.
        assert_eq!(
            request(b"\x00\x00\x00\x28\x00\x63\x00\x02\x00\x00\x00\x8e\x00\x07rdkafka"),
            Check::No
        );
        // Client id longer than the request.
        assert_eq!(
            request(b"\x00\x00\x00\x0c\x00\x03\x00\x02\x00\x00\x00\x8e\x00\x07rdkafka"),
            Check::No
        );
        // Client id that is not text.
        assert_eq!(
            request(b"\x00\x00\x00\x28\x00\x03\x00\x02\x00\x00\x00\x8e\x00\x02\x01\x02"),
            Check::No
        );
        // OpenFlow 1.3's PORT_STATUS (version 4, type 12, length 80): a 67 MB Produce.
        let openflow = b"\x04\x0c\x00\x50\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        for n in 1..=openflow.len() {
            assert_eq!(request(&openflow[..n]), Check::No, "{n}");
        }
        // A Kafka *response* (size, correlation id, body) is not a request.
        assert_eq!(
            request(b"\x00\x00\x01\x5a\x00\x00\x00\x8c\x00\x00\x00\x00\x00\x38"),
            Check::No
        );
        assert_eq!(request(b"GET / HTTP/1.1\r\n"), Check::No);
    }
}
