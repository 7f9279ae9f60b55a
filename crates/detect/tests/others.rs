//! Protocols bulkhead does not name come out `unknown`, whatever they share with one it
//! does (a `220` greeting, a `+OK` line, BER, DNS's header, a request line). Openings
//! written from each protocol's specification, as their usual clients and servers send
//! them; fed whole, from the start and from the middle, and as datagrams.

use bulkhead_detect::{Detection, Detector, Dir};

/// A protocol's name and its opening, side by side.
type Opening = (&'static str, Vec<(Dir, Vec<u8>)>);

fn c(b: &[u8]) -> (Dir, Vec<u8>) {
    (Dir::ToServer, b.to_vec())
}
fn s(b: &[u8]) -> (Dir, Vec<u8>) {
    (Dir::ToClient, b.to_vec())
}

fn app(d: Detection) -> String {
    match d {
        Detection::Known { app, .. } => app.as_str().to_string(),
        Detection::Unknown => "unknown".into(),
        Detection::NeedMore => "need-more".into(),
    }
}

fn answer(mut d: Detector, parts: &[(Dir, Vec<u8>)]) -> String {
    for (dir, b) in parts {
        d.feed(*dir, b);
    }
    app(d.finish())
}

/// RTMP's C0 (version 3) and C1: a time, four zero bytes, 1,528 random ones (a fixed
/// generator here, so the test is the same every run).
fn rtmp_c0_c1() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let random = (0..1528).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    });
    [3u8, 0, 0, 0x1f, 0x40, 0, 0, 0, 0]
        .into_iter()
        .chain(random)
        .collect()
}

/// A NetBIOS name service message (RFC 1002 4.2): `flags`, one question for `name`
/// (padded to 15 bytes, the 16th the service suffix 0; `*` the node-status wildcard,
/// padded with zeros) of type `qtype` (0x20 NB, 0x21 NBSTAT), and with `record` the
/// registration's own NB record (a pointer to the question's name).
fn nbns(flags: u16, name: &str, qtype: u8, record: bool) -> Vec<u8> {
    let pad = if name == "*" { 0 } else { b' ' };
    let mut raw = name.as_bytes().to_vec();
    raw.resize(15, pad);
    raw.push(0);
    let mut m = vec![0x82, 0x28];
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(record), 32]);
    for b in raw {
        m.extend_from_slice(&[b'A' + (b >> 4), b'A' + (b & 15)]);
    }
    m.extend_from_slice(&[0, 0, qtype, 0, 1]);
    if record {
        m.extend_from_slice(
            b"\xc0\x0c\x00\x20\x00\x01\x00\x04\x93\xe0\x00\x06\x60\x00\x0a\x00\x00\x05",
        );
    }
    m
}

#[test]
fn protocols_bulkhead_does_not_name_are_unknown() {
    let stream: Vec<Opening> = vec![
        ("ftp", vec![s(b"220 (vsFTPd 3.0.3)\r\n"), c(b"USER anonymous\r\n"), s(b"331 Please specify the password.\r\n"), c(b"PASS x@example.com\r\n")]),
        ("ftp with a 220 naming the host", vec![s(b"220 ftp.example.com FTP server ready\r\n"), c(b"AUTH TLS\r\n"), s(b"234 AUTH TLS OK.\r\n")]),
        ("pop3", vec![s(b"+OK Dovecot (Debian) ready.\r\n"), c(b"CAPA\r\n"), s(b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n"), c(b"USER bob\r\n"), s(b"+OK\r\n"), c(b"QUIT\r\n")]),
        ("pop3 behind a PROXY header", vec![c(b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 110\r\n"), s(b"+OK Dovecot (Debian) ready.\r\n"), c(b"CAPA\r\n")]),
        ("imap", vec![s(b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n"), c(b"a001 CAPABILITY\r\n"), s(b"* CAPABILITY IMAP4rev1 IDLE\r\na001 OK Pre-login capabilities listed, post-login capabilities have more.\r\n")]),
        ("nntp", vec![s(b"200 news.example.com InterNetNews NNRP server INN 2.7.0 ready (posting ok)\r\n"), c(b"CAPABILITIES\r\n"), s(b"101 Capability list:\r\nVERSION 2\r\nREADER\r\n.\r\n")]),
        ("irc", vec![c(b"NICK guest\r\nUSER guest 0 * :Guest User\r\n"), s(b":irc.example.net NOTICE * :*** Looking up your hostname...\r\n")]),
        ("xmpp", vec![c(b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")]),
        ("sip over tcp", vec![c(b"OPTIONS sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\nTo: <sip:alice@example.com>\r\nFrom: <sip:bob@example.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\nCSeq: 63104 OPTIONS\r\nContent-Length: 0\r\n\r\n"), s(b"SIP/2.0 200 OK\r\nCSeq: 63104 OPTIONS\r\nContent-Length: 0\r\n\r\n")]),
        ("rtsp", vec![c(b"OPTIONS rtsp://example.com/media.mp4 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: ffmpeg\r\n\r\n"), s(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE\r\n\r\n")]),
        ("vnc", vec![s(b"RFB 003.008\n"), c(b"RFB 003.008\n"), s(b"\x01\x02")]),
        ("smb2", vec![c(b"\x00\x00\x00\x66\xfeSMB\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x24\x00\x02\x00\x01\x00\x00\x00\x7f\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x02\x10\x02")]),
        ("rdp", vec![c(b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00")]),
        ("telnet", vec![s(b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"), c(b"\xff\xfb\x18\xff\xfb\x20")]),
        ("whois", vec![c(b"example.com\r\n"), s(b"   Domain Name: EXAMPLE.COM\r\n   Registry Domain ID: 2336799_DOMAIN_COM-VRSN\r\n")]),
        ("kerberos over tcp", vec![c(b"\x00\x00\x00\x9c\x6a\x81\x99\x30\x81\x96\xa1\x03\x02\x01\x05\xa2\x03\x02\x01\x0a")]),
        ("stomp", vec![c(b"CONNECT\naccept-version:1.2\nhost:example.com\n\n\x00"), s(b"CONNECTED\nversion:1.2\n\n\x00")]),
        ("zookeeper four-letter word", vec![c(b"ruok"), s(b"imok")]),
        ("beanstalkd", vec![c(b"put 0 0 60 5\r\nhello\r\n"), s(b"INSERTED 1\r\n")]),
        ("git", vec![c(b"0032git-upload-pack /project.git\x00host=example.com\x00")]),
        ("nats", vec![s(b"INFO {\"server_id\":\"NAX\",\"version\":\"2.10.7\",\"max_payload\":1048576}\r\n"), c(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n"), s(b"PONG\r\n"), c(b"SUB orders 1\r\nPUB orders 5\r\nhello\r\n")]),
        ("mssql tds prelogin", vec![c(b"\x12\x01\x00\x2f\x00\x00\x01\x00\x00\x00\x1a\x00\x06\x01\x00\x20\x00\x01\x02\x00\x21\x00\x01\x03\x00\x22\x00\x04\x04\x00\x26\x00\x01\xff\x09\x00\x00\x00\x00\x00\x01\x00\xb8\x0d\x00\x00\x01")]),
        ("oracle tns connect", vec![c(b"\x00\x3a\x00\x00\x01\x00\x00\x00\x01\x3a\x01\x2c\x00\x00\x08\x00\x7f\xff\x7f\x08\x00\x00\x01\x00\x00\x20\x00\x3a(DESCRIPTION=(CONNECT_DATA=(SID=ORCL)))")]),
        ("cassandra cql startup", vec![c(b"\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0")]),
        ("zeromq zmtp", vec![c(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")]),
        ("rtmp handshake", vec![c(&rtmp_c0_c1())]),
        ("opc ua hello", vec![c(b"HELF\x38\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x18\x00\x00\x00opc.tcp://plc.example:4840")]),
        ("syslog over tcp", vec![c(b"<34>1 2026-12-05T00:00:00Z host app - - - message\n")]),
        ("http/0.9-like raw line", vec![c(b"HELLO WORLD\r\n"), s(b"ERR unknown\r\n")]),
    ];
    let datagrams: Vec<Opening> = vec![
        // NetBIOS Name Service (RFC 1002) is DNS's message format around NetBIOS names.
        ("netbios name query", vec![c(&nbns(0x0110, "WORKGROUP", 0x20, false))]),
        ("netbios node status (nbtscan)", vec![c(&nbns(0x0000, "*", 0x21, false))]),
        ("netbios name registration", vec![c(&nbns(0x2910, "HOST", 0x20, true))]),
        ("netbios name query over a scope", vec![c(&[&nbns(0x0100, "FILESRV", 0x20, false)[..50], b"\x07example\x03com\x00\x00\x20\x00\x01"].concat())]),
        ("netbios datagram (browser announcement)", vec![c(&[&b"\x11\x02\x81\x2c\xc0\xa8\x01\x05\x00\x8a\x00\xbb\x00\x00"[..], &nbns(0, "HOST", 0x20, false)[12..46], &nbns(0, "WORKGROUP", 0x20, false)[12..46], b"\xffSMB\x25"].concat())]),
        ("snmp v2c get", vec![c(b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19\x02\x04\x12\x34\x56\x78\x02\x01\x00\x02\x01\x00\x30\x0b\x30\x09\x06\x05\x2b\x06\x01\x02\x01\x05\x00")]),
        ("ntp", vec![c(&[&[0x1bu8][..], &[0u8; 47]].concat())]),
        ("stun binding", vec![c(b"\x00\x01\x00\x00\x21\x12\xa4\x42\x63\xc7\x11\x7e\x07\x14\x27\x8f\x5d\xed\x32\x21")]),
        ("dhcp discover", vec![c(&[&b"\x01\x01\x06\x00\x39\x03\xf3\x26\x00\x00\x00\x00"[..], &[0u8; 224], b"\x63\x82\x53\x63\x35\x01\x01\xff"].concat())]),
        ("sip over udp", vec![c(b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds7\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")]),
        ("syslog", vec![c(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")]),
        ("tftp read request", vec![c(b"\x00\x01boot.img\x00octet\x00")]),
    ];
    let mut wrong = Vec::new();
    for (name, parts) in &stream {
        for (how, d) in [
            ("start", Detector::new(16 * 1024)),
            ("midstream", Detector::midstream(16 * 1024)),
        ] {
            let got = answer(d, parts);
            if got != "unknown" && got != "need-more" {
                wrong.push(format!("{name} ({how}): {got}"));
            }
        }
    }
    // Mid-connection from each of the next messages on: a capture that started late.
    // (Not from POP3's last two: a lone `+OK` and `QUIT` are what a Redis client's
    // inline QUIT and its answer are, byte for byte.)
    for (name, parts) in &stream {
        for from in 1..parts.len().min(4) {
            let got = answer(Detector::midstream(16 * 1024), &parts[from..]);
            if got != "unknown" && got != "need-more" {
                wrong.push(format!("{name} (midstream from message {from}): {got}"));
            }
        }
    }
    for (name, parts) in &datagrams {
        let got = answer(Detector::datagrams(), parts);
        if got != "unknown" && got != "need-more" {
            wrong.push(format!("{name} (datagrams): {got}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
