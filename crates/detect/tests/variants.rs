//! Variants of the protocols bulkhead names that a capture may hold and the corpus does
//! not: other versions, other first messages, other greetings. Written from each
//! protocol's specification.

use bulkhead_detect::{Detection, Detector, Dir};

type Opening = (&'static str, Vec<(Dir, Vec<u8>)>);

fn c(b: &[u8]) -> (Dir, Vec<u8>) {
    (Dir::ToServer, b.to_vec())
}
fn s(b: &[u8]) -> (Dir, Vec<u8>) {
    (Dir::ToClient, b.to_vec())
}

fn answer(mut d: Detector, parts: &[(Dir, Vec<u8>)]) -> String {
    for (dir, b) in parts {
        d.feed(*dir, b);
    }
    match d.finish() {
        Detection::Known { app, .. } => app.as_str().to_string(),
        Detection::Unknown => "unknown".into(),
        Detection::NeedMore => "need-more".into(),
    }
}

fn be32(n: usize) -> [u8; 4] {
    (n as u32).to_be_bytes()
}

#[test]
fn variants_of_named_protocols_are_named() {
    // MongoDB legacy OP_QUERY isMaster (drivers before 3.6 and some tools still send it).
    let q = {
        let body: Vec<u8> = [
            &0u32.to_le_bytes()[..],
            b"admin.$cmd\x00",
            &0u32.to_le_bytes(),
            &1i32.to_le_bytes(),
            &[0x13, 0, 0, 0, 0x10][..],
            b"isMaster\x00",
            &1i32.to_le_bytes(),
            &[0],
        ]
        .concat();
        let len = 16 + body.len();
        [
            &(len as u32).to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &2004u32.to_le_bytes(),
            &body,
        ]
        .concat()
    };
    // Kafka ApiVersions v3 (flexible header: client id, then tagged fields).
    let kafka = {
        let body: Vec<u8> = [
            &[0u8, 18, 0, 3][..],
            &[0, 0, 0, 1],
            &[0, 7],
            b"rdkafka",
            &[0],
            &[8],
            b"librdka",
            &[6],
            b"2.0.2",
            &[0],
        ]
        .concat();
        [&be32(body.len())[..], &body].concat()
    };
    let cases: Vec<Opening> = vec![
        ("mongodb", vec![c(&q)]),
        ("kafka", vec![c(&kafka)]),
        ("postgresql", vec![c(b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x30\x39\x12\x34\x56\x78")]),
        ("mqtt", vec![c(b"\x10\x1a\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x0cmosq-abcdefg")]),
        ("amqp", vec![c(b"AMQP\x03\x01\x00\x00")]),
        ("amqp", vec![c(b"AMQP\x00\x01\x00\x00")]),
        ("memcached", vec![c(b"\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00hello")]),
        ("ldap", vec![c(b"\x30\x25\x02\x01\x01\x63\x20\x04\x00\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00\x87\x0bobjectclass\x30\x00")]),
        ("ssh", vec![s(b"SSH-1.99-OpenSSH_3.9p1\r\n"), c(b"SSH-2.0-PuTTY_Release_0.78\r\n")]),
        ("smtp", vec![s(b"220 smtp.example.com Microsoft ESMTP MAIL Service ready at Thu, 1 Jan 2026 00:00:00 +0000\r\n"), c(b"EHLO client.example.com\r\n")]),
        ("smtp", vec![s(b"220 example.com Service ready\r\n"), c(b"EHLO client.example.com\r\n")]),
        ("smtp", vec![s(b"220-mail.example.com ESMTP Exim 4.96\r\n220-We do not authorize the use of this system\r\n220 to transport unsolicited e-mail.\r\n"), c(b"EHLO a\r\n")]),
        ("redis", vec![c(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"), s(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")]),
        ("redis", vec![c(b"*1\r\n$4\r\nPING\r\n")]),
        ("mysql", vec![s(&[&[0x4a, 0, 0, 0, 0x0a][..], b"8.0.36\x00", &[0x0d, 0, 0, 0], b"abcdefgh\x00", &[0xff, 0xff, 0xff, 0x02, 0, 0xff, 0xdf, 0x15], &[0; 10], b"ijklmnopqrst\x00", b"caching_sha2_password\x00"].concat())]),
        ("http", vec![c(b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n")]),
        ("http", vec![c(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")]),
        ("http", vec![c(b"PROPFIND /dav/ HTTP/1.1\r\nHost: a\r\nDepth: 1\r\n\r\n")]),
        ("http", vec![c(b"GET / HTTP/1.0\r\n\r\n")]),
        // Behind a load balancer's PROXY protocol header (version 1, then 2).
        ("http", vec![c(b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")]),
        ("http", vec![c(b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 80\r\n"), c(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]),
        ("redis", vec![c(&[&b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\x0a\x00\x00\x05\xdc\x04\x18\xeb"[..], b"*1\r\n$4\r\nPING\r\n"].concat())]),
        ("mysql", vec![c(b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 3306\r\n"), s(&[&[0x4a, 0, 0, 0, 0x0a][..], b"8.0.36\x00", &[0x0d, 0, 0, 0], b"abcdefgh\x00", &[0xff, 0xff, 0xff, 0x02, 0, 0xff, 0xdf, 0x15], &[0; 10], b"ijklmnopqrst\x00", b"caching_sha2_password\x00"].concat())]),
        // Empty lines before the request line (RFC 9112 2.2: a server ignores them).
        ("http", vec![c(b"\r\nPOST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")]),
        // A server refusing service greets with 554 (RFC 5321 3.1); the client quits.
        ("smtp", vec![s(b"554 5.7.1 mx.example.com ESMTP service unavailable\r\n"), c(b"QUIT\r\n")]),
        // An HTTP/2 server may send its SETTINGS before the client's preface arrives.
        ("http2", vec![s(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"), c(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")]),
        ("http2", vec![c(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x40\x00\x00\x00\x00\x02\x00\x00\x00\x00")]),
        ("dns", vec![c(b"\x00\x1c\xab\xcd\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\x00\x00\x02\x00\x01\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00")]),
    ];
    let mut wrong = Vec::new();
    for (want, parts) in &cases {
        let got = answer(Detector::new(16 * 1024), parts);
        if got != *want {
            wrong.push(format!(
                "{want} -> {got}: {:?}",
                parts
                    .iter()
                    .map(|p| String::from_utf8_lossy(&p.1[..p.1.len().min(40)]).to_string())
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    [
        &be32(payload.len())[1..],
        &[kind, flags],
        &stream.to_be_bytes(),
        payload,
    ]
    .concat()
}

/// A capture that began inside an HTTP/2 connection (after the preface): frames from the
/// first byte. Their headers also read as a Kafka request's size, API key 0 and version
/// 0, which named such connections `kafka` before frames were checked first.
#[test]
fn http2_frames_mid_connection() {
    // HPACK from the static table (`:method GET`, `:path /`, `:scheme http`) and a
    // literal `content-type: application/grpc` that is not Huffman-coded.
    let get = h2(1, 0x5, 3, b"\x82\x84\x86");
    let grpc_headers = h2(1, 0x4, 5, b"\x83\x86\x5f\x10application/grpc");
    let hello = h2(0, 0, 5, b"\x00\x00\x00\x00\x07\x0a\x05world");
    let window = h2(8, 0, 0, &[0, 0, 0x40, 0]);
    let ping = h2(6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let settings = h2(4, 0, 0, &[0, 5, 0, 0, 0x40, 0]);
    let settings_ack = h2(4, 1, 0, b"");
    let cases: Vec<Opening> = vec![
        ("http2", vec![c(&[window.clone(), get.clone()].concat())]),
        (
            "http2",
            vec![
                s(&[ping.clone(), h2(1, 0x4, 3, b"\x88")].concat()),
                c(&window),
            ],
        ),
        // gRPC: one whole length-prefixed message in a DATA frame, or the literal type.
        (
            "grpc",
            vec![c(&[h2(1, 0x4, 5, b"\x83\x86"), hello.clone()].concat())],
        ),
        (
            "grpc",
            vec![c(&[grpc_headers.clone(), window.clone()].concat())],
        ),
        (
            "grpc",
            vec![s(&[h2(1, 0x4, 5, b"\x88"), hello.clone()].concat())],
        ),
        // The server's first frames (SETTINGS, its ACK) come before the client's
        // request: they must not settle `http2` before the request shows gRPC, whether
        // the capture has the client's preface or starts after it.
        (
            "grpc",
            vec![
                s(&[settings.clone(), settings_ack.clone()].concat()),
                c(&[
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
                    settings.clone(),
                ]
                .concat()),
                c(&[settings_ack.clone(), grpc_headers.clone()].concat()),
            ],
        ),
        (
            "grpc",
            vec![
                s(&[settings.clone(), settings_ack.clone()].concat()),
                c(&[
                    settings_ack,
                    h2(
                        1,
                        0x4,
                        5,
                        b"\x83\x86\x5f\x8b\x1d\x75\xd0\x62\x0d\x26\x3d\x4c\x4d\x65\x64",
                    ),
                ]
                .concat()),
                c(&hello),
            ],
        ),
    ];
    let not_h2: Vec<Opening> = vec![
        // A frame with a flag its type does not define, a SETTINGS frame on a stream,
        // a length past the default maximum: these are no HTTP/2 frames.
        (
            "undefined flag",
            vec![c(&[h2(8, 0x1, 0, &[0, 0, 1, 0]), get.clone()].concat())],
        ),
        (
            "settings on a stream",
            vec![c(
                &[h2(4, 0, 1, &[0, 3, 0, 0, 0, 100]), get.clone()].concat()
            )],
        ),
        (
            "oversized",
            vec![c(
                &[&[0u8, 0x40, 1, 0, 0, 0, 0, 0, 1][..], &[0; 64]].concat()
            )],
        ),
    ];
    let mut wrong = Vec::new();
    for (want, parts) in &cases {
        let got = answer(Detector::midstream(16 * 1024), parts);
        if got != *want {
            wrong.push(format!("{want}: {got}"));
        }
    }
    for (name, parts) in &not_h2 {
        let got = answer(Detector::midstream(16 * 1024), parts);
        if got == "http2" || got == "grpc" {
            wrong.push(format!("{name}: {got}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Datagram flows other than DNS: memcached's UDP frames (an 8-byte header before each
/// message) and connectionless LDAP (RFC 1798; Active Directory's domain controller
/// locator asks for `Netlogon` so), whichever side the capture sees first; and UDP
/// protocols with DNS- or BER-like bytes that are neither.
#[test]
fn datagrams_other_than_dns() {
    let cldap_search = b"\x30\x4d\x02\x01\x01\x63\x48\x04\x00\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00\xa0\x29\xa3\x18\x04\x09DnsDomain\x04\x0bexample.com\xa3\x0d\x04\x05NtVer\x04\x04\x06\x00\x00\x00\x30\x0a\x04\x08Netlogon";
    // The search's entry and its result in one datagram.
    let cldap_answer = b"\x30\x21\x02\x01\x01\x64\x1c\x04\x00\x30\x18\x30\x16\x04\x08Netlogon\x31\x0a\x04\x08\x17\x00\x00\x00\xfd\xf3\x03\x00\x30\x0c\x02\x01\x01\x65\x07\x0a\x01\x00\x04\x00\x04\x00";
    let cases: Vec<Opening> = vec![
        ("memcached", vec![c(b"\x00\x01\x00\x00\x00\x01\x00\x00get k\r\n")]),
        ("memcached", vec![c(b"\x12\x34\x00\x00\x00\x01\x00\x00stats\r\n")]),
        ("memcached", vec![s(b"\x00\x01\x00\x00\x00\x01\x00\x00VALUE k 0 5\r\nhello\r\nEND\r\n")]),
        ("memcached", vec![s(b"\x00\x02\x00\x00\x00\x02\x00\x00STAT pid 23831\r\nSTAT uptime 5\r\nSTAT ti")]),
        ("memcached", vec![s(b"\x00\x03\x00\x00\x00\x01\x00\x00VERSION 1.6.18\r\n")]),
        ("ldap", vec![c(cldap_search)]),
        ("ldap", vec![s(cldap_answer)]),
        // A frame header whose reserved bytes are set, or a request in two datagrams.
        ("unknown", vec![c(b"\x00\x01\x00\x00\x00\x01\x00\x01get k\r\n")]),
        ("unknown", vec![c(b"\x00\x01\x00\x00\x00\x02\x00\x00get k\r\n")]),
        // An LDAP message with bytes after it, or cut short.
        ("unknown", vec![c(&[&cldap_search[..], b"junk"].concat())]),
        ("unknown", vec![c(&cldap_search[..40])]),
        // SNMP (a BER SEQUENCE, version, community) and Kerberos (an application tag).
        ("unknown", vec![c(b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19\x02\x04\x12\x34\x56\x78\x02\x01\x00\x02\x01\x00\x30\x0b\x30\x09\x06\x05\x2b\x06\x01\x02\x01\x05\x00")]),
        ("unknown", vec![c(b"\x6a\x81\x9c\x30\x81\x99\xa1\x03\x02\x01\x05\xa2\x03\x02\x01\x0a")]),
    ];
    let mut wrong = Vec::new();
    for (want, parts) in &cases {
        let got = answer(Detector::datagrams(), parts);
        if got != *want {
            wrong.push(format!(
                "{want} -> {got}: {:?}",
                String::from_utf8_lossy(&parts[0].1)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
