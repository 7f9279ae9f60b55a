//! Properties: no input makes detection panic, and feeding a connection's bytes in
//! pieces gives the answer feeding each direction whole gives (in the same order of
//! directions).

#[path = "common/edit.rs"]
mod edit;

use bulkhead_detect::capture::detect_capture;
use bulkhead_detect::{Detection, Detector, Dir};
use edit::{apply, edit};
use proptest::prelude::*;

/// A ClientHello with SNI and ALPN, built field by field.
fn client_hello() -> Vec<u8> {
    let mut ext = b"\x00\x00\x00\x10\x00\x0e\x00\x00\x0bexample.org".to_vec();
    ext.extend_from_slice(b"\x00\x10\x00\x0b\x00\x09\x08http/1.1");
    ext.extend_from_slice(b"\x00\x2b\x00\x05\x04\x03\x04\x03\x03");
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

type Opening = (&'static str, Vec<(Dir, Vec<u8>)>);

/// curl 7.88's request asking to upgrade to h2c.
const H2C_UPGRADE: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: 10.231.1.7:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";

/// What a capture that starts mid-connection may hold first: answers only a server sends
/// (recorded from PostgreSQL 15, MariaDB 10.11 and slapd), then the client's next bytes.
fn midstream_samples() -> Vec<Opening> {
    let c = |b: &[u8]| (Dir::ToServer, b.to_vec());
    let s = |b: &[u8]| (Dir::ToClient, b.to_vec());
    vec![
        (
            "postgresql",
            vec![
                s(b"T\x00\x00\x00\x21\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I"),
                c(b"X\x00\x00\x00\x04"),
            ],
        ),
        (
            "mysql",
            vec![
                s(b"\x01\x00\x00\x01\x01\x18\x00\x00\x02\x03def\x00\x00\x00\x011\x00\x0c?\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00"),
                c(b"\x01\x00\x00\x00\x01"),
            ],
        ),
        (
            "ldap",
            vec![s(b"\x30\x0c\x02\x01\x02\x64\x07\x04\x00\x30\x03\x04\x01a")],
        ),
        // From the corpus's captures, cut after their first packets: Redis 7 inside its
        // COMMAND DOCS answer, memcached 1.4 answering `stats`, one PUBLISH a broker sent
        // before the subscriber disconnected, libmariadb's handshake response to MariaDB
        // (extended capabilities in the filler), and an SSH key exchange's KEXINIT.
        (
            "redis",
            vec![s(b"key\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n*0\r\n*10\r\n$13\r\nzrangebyscore\r\n:-4\r\n*1\r\n+readonly\r\n")],
        ),
        (
            "memcached",
            vec![s(b"STAT pid 8837\r\nSTAT uptime 193\r\nSTAT time 1534343744\r\nEND\r\n")],
        ),
        (
            "mqtt",
            vec![
                s(b"0W\x00\x19astr/s720/02D5050223D3/99{\"s\":204,\"x\":\"\",\"success_msg\":\"Update not pushed for area.\"}"),
                c(b"\xe0\x00"),
            ],
        ),
        (
            "mysql",
            vec![
                c(&mariadb_response()),
                s(b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00"),
            ],
        ),
        ("ssh", vec![c(&kexinit())]),
    ]
}

/// libmariadb 3.3's HandshakeResponse41 to MariaDB: no CLIENT_MYSQL capability, so the
/// filler's last four bytes are MariaDB's extended capabilities.
fn mariadb_response() -> Vec<u8> {
    let mut p = hex("84a6ff200000000121");
    p.extend_from_slice(&[0; 19]);
    p.extend_from_slice(&[0x1d, 0, 0, 0]);
    p.extend_from_slice(b"admin\x00\x14");
    p.extend_from_slice(&[0xe3; 20]);
    p.extend_from_slice(
        b"mysql_native_password\x00\x16\x03_os\x05Linux\x0c_client_name\x0alibmariadb",
    );
    let mut packet = (p.len() as u32).to_le_bytes().to_vec();
    packet[3] = 1;
    packet.extend_from_slice(&p);
    packet
}

/// An SSH KEXINIT packet as OpenSSH 9 sends it (lists shortened).
fn kexinit() -> Vec<u8> {
    let lists = [
        "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ext-info-c",
        "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com",
        "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
        "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
    ];
    let mut payload = vec![20];
    payload.extend_from_slice(&[0x5a; 16]);
    for l in lists {
        payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
        payload.extend_from_slice(l.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let padding = 8 - (5 + payload.len()) % 8 + 4;
    let mut p = ((1 + payload.len() + padding) as u32)
        .to_be_bytes()
        .to_vec();
    p.push(padding as u8);
    p.extend_from_slice(&payload);
    p.extend(std::iter::repeat_n(0, padding));
    p
}

/// Real-looking openings of each protocol, in the order the sides speak.
fn samples() -> Vec<Opening> {
    let c = |b: &[u8]| (Dir::ToServer, b.to_vec());
    let s = |b: &[u8]| (Dir::ToClient, b.to_vec());
    vec![
        ("http", vec![c(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n")]),
        ("http", vec![c(b"GET / HTTP/1.1\r\n"), s(b"HTTP/1.1 200 OK\r\n")]),
        ("redis", vec![c(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), s(b"$-1\r\n")]),
        (
            "http2",
            vec![c(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")],
        ),
        // grpcio 1.51's client, recorded: its preface, then (once the server's SETTINGS
        // came) a SETTINGS ACK and the first call's HEADERS.
        (
            "grpc",
            vec![
                c(&hex("505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000240400000000000002000000000003000000000004003fffff0005003fffff000600002000fe0300000001000004080000000000003f0000")),
                s(&hex("000000040000000000")),
                c(&hex("0000000401000000000000e701040000000140053a70617468162f64656d6f2e477265657465722f53617948656c6c6f400a3a617574686f726974790f3132372e302e302e313a35353638398386400c636f6e74656e742d74797065106170706c69636174696f6e2f677270634002746508747261696c6572734014677270632d6163636570742d656e636f64696e67176964656e746974792c206465666c6174652c20677a6970400c677270632d74696d656f757405313530306d400a757365722d6167656e7430677270632d707974686f6e2f312e35312e3120677270632d632f32392e302e3020286c696e75783b2063687474703229")),
            ],
        ),
        ("tls", vec![c(&client_hello())]),
        // Behind a load balancer's PROXY header, versions 1 and 2.
        (
            "http",
            vec![c(b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")],
        ),
        (
            "tls",
            vec![c(&[&b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\x0a\x00\x00\x05\xdc\x04\x01\xbb"[..], &client_hello()].concat())],
        ),
        ("postgresql", vec![c(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), s(b"S")]),
        (
            "ssh",
            vec![s(b"SSH-2.0-OpenSSH_9.2\r\n"), c(b"SSH-2.0-PuTTY_Release_0.78\r\n")],
        ),
        ("smtp", vec![s(b"220 mail.example.com ESMTP Postfix\r\n"), c(b"EHLO me\r\n")]),
        (
            "mysql",
            vec![s(b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00\x1f\x3a\x12\x5c\x66\x01\x70\x3e\x00\xff\xff\xff\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7b\x4e\x2f\x21\x36\x2b\x5e\x68\x57\x13\x10\x04\x00caching_sha2_password\x00")],
        ),
        ("mqtt", vec![c(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"), s(b"\x20\x02\x00\x00")]),
        ("amqp", vec![c(b"AMQP\x00\x00\x09\x01")]),
        ("ldap", vec![c(b"0\x0c\x02\x01\x01`\x07\x02\x01\x03\x04\x00\x80\x00")]),
        (
            "kafka",
            vec![c(b"\x00\x00\x00\x28\x00\x03\x00\x02\x00\x00\x00\x8e\x00\x07rdkafka\x00\x00\x00\x01\x00\x11LB_MAIN_LOG_INPUT")],
        ),
        (
            "mongodb",
            vec![c(b"\x2f\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00\x1a\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02$db\x00\x02\x00\x00\x00a\x00\x00")],
        ),
        ("memcached", vec![c(b"get user:42\r\n"), s(b"END\r\n")]),
        // curl --http2 to Apache (switches) and to nginx (ignores the upgrade).
        ("http2", vec![c(H2C_UPGRADE), s(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64")]),
        ("http", vec![c(H2C_UPGRADE), s(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 3\r\n\r\nh1\n")]),
        (
            "dns",
            vec![c(b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01")],
        ),
    ]
}

fn app(d: &Detection) -> &str {
    match d {
        Detection::Known { app, .. } => app.as_str(),
        Detection::Unknown => "unknown",
        Detection::NeedMore => "need-more",
    }
}

/// Feed each part in pieces of the given sizes (cycling), then finish.
fn fed(mut d: Detector, parts: &[(Dir, Vec<u8>)], cuts: &[usize]) -> Detection {
    let mut sizes = cuts.iter().copied().cycle();
    for (dir, data) in parts {
        let mut at = 0;
        while at < data.len() {
            let n = if cuts.is_empty() {
                data.len()
            } else {
                sizes.next().unwrap_or(1)
            };
            let end = (at + n).min(data.len());
            d.feed(*dir, &data[at..end]);
            at = end;
        }
    }
    d.finish()
}

#[test]
fn every_sample_is_detected() {
    for (want, parts) in samples() {
        let got = fed(Detector::new(16 * 1024), &parts, &[]);
        assert_eq!(app(&got), want, "{parts:?}");
        // Mid-connection mode knows the openings too.
        let got = fed(Detector::midstream(16 * 1024), &parts, &[]);
        assert_eq!(app(&got), want, "midstream {parts:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..600),
                                   s in proptest::collection::vec(any::<u8>(), 0..600)) {
        for mut d in [Detector::new(512), Detector::midstream(512), Detector::datagrams()] {
            d.feed(Dir::ToServer, &c);
            d.feed(Dir::ToClient, &s);
            let _ = d.finish();
        }
        let _ = detect_capture(&c);
    }

    #[test]
    fn splitting_does_not_change_the_answer(k in 0..samples().len(), cuts in proptest::collection::vec(1usize..24, 1..10)) {
        let (_, parts) = &samples()[k];
        for make in [Detector::new as fn(usize) -> Detector, Detector::midstream] {
            prop_assert_eq!(fed(make(16 * 1024), parts, &cuts), fed(make(16 * 1024), parts, &[]));
        }
    }

    #[test]
    fn midstream_answers_are_detected_however_split(k in 0..midstream_samples().len(), cuts in proptest::collection::vec(1usize..24, 1..10)) {
        let (want, parts) = &midstream_samples()[k];
        let got = fed(Detector::midstream(16 * 1024), parts, &cuts);
        prop_assert_eq!(app(&got), *want);
    }

    #[test]
    fn arbitrary_answers_to_an_upgrade_or_after_a_reply_never_panic(s in proptest::collection::vec(any::<u8>(), 0..600)) {
        for make in [Detector::new as fn(usize) -> Detector, Detector::midstream] {
            let mut d = make(512);
            d.feed(Dir::ToServer, H2C_UPGRADE);
            d.feed(Dir::ToClient, &s);
            let _ = d.finish();
        }
        // Behind a whole PostgreSQL message, a MySQL column count, an LDAP response.
        for head in [&b"1\x00\x00\x00\x04"[..], b"\x01\x00\x00\x01\x01", b"\x30\x05\x02\x01\x01\x61"] {
            let mut d = Detector::midstream(512);
            d.feed(Dir::ToServer, &[head, &s[..]].concat());
            let _ = d.finish();
        }
    }

    #[test]
    fn mutated_openings_never_panic(k in 0..samples().len() + midstream_samples().len(),
                                    edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                    cut in any::<usize>()) {
        // Openings, and what a capture that starts mid-connection holds first.
        let (_, mut parts) = samples().into_iter().chain(midstream_samples()).nth(k).unwrap();
        let n = parts.len();
        for (at, byte) in edits {
            let p = &mut parts[at % n].1;
            let i = at % p.len();
            p[i] = byte;
        }
        let p = &mut parts[cut % n].1;
        let keep = cut % (p.len() + 1);
        p.truncate(keep);
        for make in [Detector::new as fn(usize) -> Detector, Detector::midstream] {
            let _ = fed(make(16 * 1024), &parts, &[3, 7]);
        }
    }
}

/// Captures built from real openings, then truncated at every length: reading never
/// panics, and a capture is either rejected or read.
#[test]
fn truncated_captures_never_panic() {
    let Some(root) = common::corpora() else {
        return;
    };
    for (name, bytes) in common::captures(&root).into_iter().take(6) {
        for n in (0..bytes.len().min(4000)).step_by(7) {
            let _ = detect_capture(&bytes[..n]);
        }
        assert!(detect_capture(&bytes).is_ok(), "{name}");
    }
}

#[path = "common/corpora.rs"]
mod common;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Real openings of every protocol, edited a few times (a length that lies, a cut
    /// field, a repeated header): random bytes rarely get past the first check of a
    /// parser; these reach its inner fields. Never a panic, whatever the split.
    #[test]
    fn edited_openings_never_panic(k in 0..samples().len() + midstream_samples().len(),
                                   edits in proptest::collection::vec((any::<usize>(), edit()), 1..6),
                                   cuts in proptest::collection::vec(1usize..24, 0..6)) {
        let all: Vec<Opening> = samples().into_iter().chain(midstream_samples()).collect();
        let (_, mut parts) = all[k].clone();
        for (which, e) in &edits {
            let n = parts.len();
            apply(&mut parts[which % n].1, e);
        }
        for make in [Detector::new as fn(usize) -> Detector, Detector::midstream] {
            let _ = fed(make(16 * 1024), &parts, &cuts);
            let _ = fed(make(64), &parts, &cuts);
        }
        let mut d = Detector::datagrams();
        for (dir, bytes) in &parts {
            d.feed(*dir, bytes);
        }
        let _ = d.finish();
    }
}
