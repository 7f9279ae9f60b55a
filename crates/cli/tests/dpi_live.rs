//! Detection on fresh captures of real programs, never on a stored corpus: Debian's own
//! servers (nginx, Apache, grpcio, openssl, dnsmasq, Redis, PostgreSQL, MariaDB, slapd,
//! sshd, mosquitto, memcached, aiosmtpd, RabbitMQ) run in one network namespace, their
//! clients (curl, wget, nghttp, grpcio, openssl, dig, redis-cli, nc, psql, mariadb,
//! ldapsearch, ssh, mosquitto_pub, memcstat, swaks, amqp-publish, and kcat, kafka-python
//! and pymongo against a sink) in another, `tcpdump`
//! records the server's interface, and `bulkhead dpi detect` must name every flow's
//! protocol and what it saw (SNI, ALPN, version, method, query name, command...).
//!
//! Each case talks to its own server address (the servers listen on all of them), so the
//! capture's flows are told apart by their server address, while their ports stay the
//! protocols' usual ones. Kafka and MongoDB have no server in Debian 12: their clients
//! talk to a sink that never answers (their first requests are all detection needs).

mod common;

use common::lab::{bulkhead, require};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SRV: &str = "bhdpi-srv";
const CLI: &str = "bhdpi-cli";
const DIR: &str = "/tmp/bulkhead-dpilive";
/// Server and client addresses: the server's interface holds one address per case.
const NET4: &str = "10.231";
const NET6: &str = "fd00:231";

fn run(args: &[&str]) -> (bool, String) {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("{}: {e}", args[0])),
    }
}

fn must(args: &[&str]) {
    let (ok, out) = run(args);
    assert!(ok, "{args:?}: {out}");
}

/// `cmd` in network namespace `ns`.
fn in_ns(ns: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(cmd);
    c
}

/// Kill every process in `ns` (each one this test started there), by id.
fn kill_all(ns: &str) {
    for signal in ["-TERM", "-KILL"] {
        let (_, out) = run(&["ip", "netns", "pids", ns]);
        let pids: Vec<&str> = out
            .split_whitespace()
            .filter(|p| p.parse::<u32>().is_ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in &pids {
            let _ = run(&["kill", signal, p]);
        }
        for _ in 0..30 {
            let (_, left) = run(&["ip", "netns", "pids", ns]);
            if left.trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The two namespaces, the servers and the files: removed however the test ends.
struct World {
    servers: Vec<Child>,
}

impl World {
    fn clean() {
        for ns in [SRV, CLI] {
            kill_all(ns);
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(DIR);
    }

    fn up() -> World {
        World::clean();
        std::fs::create_dir_all(DIR).expect("creating the test directory");
        let world = World {
            servers: Vec::new(),
        };
        for ns in [SRV, CLI] {
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        must(&[
            "ip", "-n", SRV, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", CLI,
        ]);
        for (ns, host) in [(SRV, "0.1"), (CLI, "0.2")] {
            let v4 = format!("{NET4}.{host}/16");
            let v6 = format!("{NET6}::{}/64", host.replace("0.", ""));
            must(&["ip", "-n", ns, "addr", "add", &v4, "dev", "eth0"]);
            must(&["ip", "-n", ns, "addr", "add", &v6, "dev", "eth0", "nodad"]);
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        world
    }

    /// Start a server in the server namespace, its output in `DIR/NAME.log`.
    fn serve(&mut self, name: &str, cmd: &[&str], env: &[(&str, &str)]) {
        let log = std::fs::File::create(format!("{DIR}/{name}.log")).expect("a server log");
        let child = in_ns(SRV, cmd)
            .envs(env.iter().copied())
            .current_dir(DIR)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a server log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.servers.push(child);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::env::var("KEEP_DPI_LIVE").is_ok() {
            eprintln!("KEEP_DPI_LIVE: leaving {SRV}, {CLI} and {DIR}");
            return;
        }
        World::clean();
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait until something listens on `port` (`t` TCP, `u` UDP) in the server namespace.
fn listening(name: &str, kind: char, port: u16, within: Duration) {
    let flag = format!("-Hln{kind}");
    let filter = format!("sport = :{port}");
    let start = Instant::now();
    while start.elapsed() < within {
        let o = in_ns(SRV, &["ss", &flag, &filter]).output().expect("ss");
        if !String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(format!("{DIR}/{name}.log")).unwrap_or_default();
    panic!("{name} does not listen on {port} after {within:?}: {log}");
}

fn write(name: &str, text: &str) -> String {
    let path = format!("{DIR}/{name}");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    path
}

/// What a detail field must be.
enum Want {
    Is(Value),
    Starts(&'static str),
}

struct Case {
    name: &'static str,
    v6: bool,
    l4: &'static str,
    protocol: &'static str,
    /// The client, a `sh -c` command line: `{ip}` is the case's server address, `{url}`
    /// the same as a URL host (`[...]` for IPv6), `{dir}` the test's directory, `{wait}`
    /// (mid-connection cases) a command that returns once the capture runs.
    client: &'static str,
    /// Started before the capture, which sees its connection from the middle on.
    midstream: bool,
    /// Mid-connection: a command in the server's namespace that prints 1 once the server
    /// holds the client's request (the capture then starts after it, and sees the answer).
    ready: Option<&'static str>,
    /// The side that opened a mid-connection flow cannot be told from its bytes (an MQTT
    /// subscriber that only receives PUBLISH): either orientation is right.
    either_way: bool,
    /// Some clients fail by design after detection had what it needs (ssh without a key).
    may_fail: bool,
    detail: Vec<(&'static str, Want)>,
}

fn case(name: &'static str, protocol: &'static str, client: &'static str) -> Case {
    Case {
        name,
        v6: false,
        l4: "TCP",
        protocol,
        client,
        midstream: false,
        ready: None,
        either_way: false,
        may_fail: false,
        detail: Vec::new(),
    }
}

impl Case {
    fn v6(mut self) -> Case {
        self.v6 = true;
        self
    }
    fn udp(mut self) -> Case {
        self.l4 = "UDP";
        self
    }
    fn midstream(mut self) -> Case {
        self.midstream = true;
        self
    }
    fn ready(mut self, probe: &'static str) -> Case {
        self.ready = Some(probe);
        self
    }
    fn either_way(mut self) -> Case {
        self.either_way = true;
        self
    }
    fn may_fail(mut self) -> Case {
        self.may_fail = true;
        self
    }
    fn is(mut self, key: &'static str, v: Value) -> Case {
        self.detail.push((key, Want::Is(v)));
        self
    }
    fn starts(mut self, key: &'static str, prefix: &'static str) -> Case {
        self.detail.push((key, Want::Starts(prefix)));
        self
    }
}

/// The server address of the `i`th case.
fn address(i: usize, v6: bool) -> IpAddr {
    let s = if v6 {
        format!("{NET6}::1:{:x}", i + 1)
    } else {
        format!("{NET4}.1.{}", i + 1)
    };
    s.parse().expect("a case address")
}

const GRPC_SERVER: &str = r#"
from concurrent import futures
import grpc

def say_hello(request, context):
    return b"hello " + request

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "demo.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)}),))
server.add_insecure_port("[::]:50051")
server.start()
server.wait_for_termination()
"#;

const GRPC_CLIENT: &str = r#"
import sys
import grpc

with grpc.insecure_channel(sys.argv[1] + ":50051") as ch:
    print(ch.unary_unary("/demo.Greeter/SayHello")(b"bob", timeout=10).decode())
"#;

const SINK: &str = r#"
import socket, threading

def hold(c):
    while c.recv(65536):
        pass

def serve(port):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(64)
    while True:
        threading.Thread(target=hold, args=(s.accept()[0],), daemon=True).start()

for port in (9092, 27017):
    threading.Thread(target=serve, args=(port,)).start()
"#;

/// Clients written with Python libraries (Debian's python3-*), which open their
/// connections their own way: `clients.py KIND HOST`.
const PY_CLIENTS: &str = r#"
import sys
kind, url = sys.argv[1], sys.argv[2]
host = url.strip("[]")
if kind == "redis":
    import redis
    redis.Redis(host=host, socket_timeout=5).set("k", "v")
elif kind == "pymysql":
    import pymysql
    pymysql.connect(host=host, user="root", connect_timeout=5).close()
elif kind == "paho":
    import paho.mqtt.publish as publish
    publish.single("sensors/t2", "7", hostname=host)
elif kind == "ldap3":
    import ldap3
    c = ldap3.Connection(ldap3.Server(host, connect_timeout=5), auto_bind=True)
    c.search("dc=example,dc=test", "(uid=alice)")
elif kind == "pika":
    import pika
    pika.BlockingConnection(pika.ConnectionParameters(host)).close()
elif kind in ("dns-udp", "dns-tcp"):
    import dns.message, dns.query
    q = dns.message.make_query("api.example.test", "MX")
    (dns.query.udp if kind == "dns-udp" else dns.query.tcp)(q, host, timeout=5)
elif kind == "httpx":
    import httpx
    httpx.Client(http2=True, verify=False).get("https://" + url + "/")
elif kind == "pymemcache":
    from pymemcache.client.base import Client
    Client((host, 11211), timeout=5).set("k", "v")
elif kind == "paramiko":
    import paramiko
    t = paramiko.Transport((host, 22))
    t.start_client(timeout=5)
    t.close()
elif kind == "smtplib":
    import smtplib
    s = smtplib.SMTP(host, 25, timeout=10)
    s.ehlo("client.example.test")
    s.quit()
"#;

/// Start every server; each listens on all of the server namespace's addresses.
fn servers(w: &mut World, amqp: bool) {
    let (cert, key) = (format!("{DIR}/cert.pem"), format!("{DIR}/key.pem"));
    must(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-days",
        "1",
        "-subj",
        "/CN=example.test",
        "-addext",
        "subjectAltName=DNS:example.test,DNS:*.example.test",
    ]);

    // nginx: HTTP/1.1 on 80, HTTP/2 with prior knowledge on 81 (h2c), TLS + h2 on 443.
    let conf = write(
        "nginx.conf",
        &format!(
            "daemon off;\npid {DIR}/nginx.pid;\nerror_log {DIR}/nginx.error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n\
             server {{ listen 80; listen [::]:80; location / {{ return 200 \"h1\\n\"; }} }}\n\
             server {{ listen 81 http2; listen [::]:81 http2; location / {{ return 200 \"h2c\\n\"; }} }}\n\
             server {{ listen 443 ssl http2; listen [::]:443 ssl http2; ssl_certificate {cert};\n\
               ssl_certificate_key {key}; location / {{ return 200 \"tls\\n\"; }} }}\n}}\n"
        ),
    );
    w.serve(
        "nginx",
        &[
            "nginx",
            "-p",
            DIR,
            "-e",
            &format!("{DIR}/nginx.error.log"),
            "-c",
            &conf,
        ],
        &[],
    );
    // Python's http.server answers HTTP/1.0.
    std::fs::create_dir_all(format!("{DIR}/www")).expect("www");
    write("www/index.html", "hello\n");
    w.serve(
        "http.server",
        &[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "::",
            "--directory",
            &format!("{DIR}/www"),
            "8000",
        ],
        &[],
    );
    // Apache's mod_http2 switches to HTTP/2 on `Upgrade: h2c` (nginx ignores it).
    let httpd = write(
        "httpd.conf",
        &format!(
            "ServerRoot {DIR}\nServerName h2c.example.test\nPidFile {DIR}/httpd.pid\n\
             ErrorLog {DIR}/httpd.error.log\nMutex file:{DIR}\n\
             LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
             LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
             LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so\n\
             User www-data\nGroup www-data\nListen 8080\nProtocols h2c http/1.1\n\
             DocumentRoot {DIR}/www\n<Directory {DIR}/www>\n  Require all granted\n</Directory>\n"
        ),
    );
    w.serve("apache2", &["apache2", "-X", "-f", &httpd], &[]);
    let grpc = write("grpc_server.py", GRPC_SERVER);
    w.serve("grpc", &["/usr/bin/python3", &grpc], &[]);
    w.serve(
        "s_server",
        &[
            "openssl", "s_server", "-accept", "8443", "-cert", &cert, "-key", &key, "-www",
            "-quiet",
        ],
        &[],
    );
    w.serve(
        "dnsmasq",
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--user=root",
            &format!("--pid-file={DIR}/dnsmasq.pid"),
            "--port=53",
            "--address=/api.example.test/192.0.2.10",
            "--address=/api.example.test/2001:db8::10",
        ],
        &[],
    );
    std::fs::create_dir_all(format!("{DIR}/redis")).expect("redis dir");
    w.serve(
        "redis",
        &[
            "redis-server",
            "--port",
            "6379",
            "--bind",
            "* -::*",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &format!("{DIR}/redis"),
        ],
        &[],
    );

    // PostgreSQL 15 with TLS on: sslmode=prefer goes on in TLS after its SSLRequest.
    let pg = format!("{DIR}/pg");
    std::fs::create_dir_all(&pg).expect("pg dir");
    std::fs::copy(&cert, format!("{pg}/server.crt")).expect("pg cert");
    std::fs::copy(&key, format!("{pg}/server.key")).expect("pg key");
    must(&["chmod", "600", &format!("{pg}/server.key")]);
    must(&["chown", "-R", "postgres:postgres", &pg]);
    let postgres = format!(
        "set -e; pg() {{ setpriv --reuid=postgres --regid=postgres --init-groups \"$@\"; }}\n\
         pg /usr/lib/postgresql/15/bin/initdb -D {pg}/data -A trust -U postgres >{pg}/initdb.log\n\
         printf 'host all all 0.0.0.0/0 trust\\nhost all all ::/0 trust\\n' >>{pg}/data/pg_hba.conf\n\
         exec setpriv --reuid=postgres --regid=postgres --init-groups \
           /usr/lib/postgresql/15/bin/postgres -D {pg}/data -k {pg} -p 5432 \
           -c listen_addresses='*' -c ssl=on -c ssl_cert_file={pg}/server.crt \
           -c ssl_key_file={pg}/server.key"
    );
    w.serve("postgres", &["sh", "-c", &postgres], &[]);

    let my = format!("{DIR}/mariadb");
    let mariadb = format!(
        "set -e; mkdir -p {my}\n\
         mariadb-install-db --no-defaults --datadir={my}/data --user=root \
           --auth-root-authentication-method=normal >{my}/install.log 2>&1\n\
         exec mariadbd --no-defaults --datadir={my}/data --user=root --port=3306 \
           --bind-address=0.0.0.0 --socket={my}/sock --pid-file={my}/pid \
           --skip-name-resolve --skip-grant-tables"
    );
    w.serve("mariadb", &["sh", "-c", &mariadb], &[]);

    // slapd with StartTLS (ldapsearch -ZZ).
    let ldap = format!("{DIR}/ldap");
    std::fs::create_dir_all(format!("{ldap}/db")).expect("ldap dir");
    let slapd_conf = write(
        "ldap/slapd.conf",
        &format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\npidfile {ldap}/slapd.pid\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\nTLSCertificateFile {cert}\n\
             TLSCertificateKeyFile {key}\ndatabase mdb\nsuffix \"dc=example,dc=test\"\n\
             rootdn \"cn=admin,dc=example,dc=test\"\nrootpw secret\ndirectory {ldap}/db\n"
        ),
    );
    let ldif = write(
        "ldap/base.ldif",
        "dn: dc=example,dc=test\nobjectClass: dcObject\nobjectClass: organization\n\
         dc: example\no: Example\n\n\
         dn: uid=alice,dc=example,dc=test\nobjectClass: inetOrgPerson\nuid: alice\n\
         cn: Alice\nsn: Liddell\n",
    );
    must(&["slapadd", "-f", &slapd_conf, "-l", &ldif]);
    w.serve(
        "slapd",
        &["slapd", "-d", "0", "-h", "ldap:///", "-f", &slapd_conf],
        &[],
    );

    // sshd with a throwaway host key (it refuses to start without /run/sshd).
    let host_key = format!("{DIR}/ssh_host_ed25519_key");
    must(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        &host_key,
    ]);
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    w.serve(
        "sshd",
        &[
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-h",
            &host_key,
            "-o",
            "PidFile=none",
            "-p",
            "22",
        ],
        &[],
    );

    // mosquitto 2 listens on localhost only and refuses anonymous clients unless told.
    let mqtt = write("mosquitto.conf", "listener 1883\nallow_anonymous true\n");
    w.serve("mosquitto", &["mosquitto", "-c", &mqtt], &[]);
    w.serve(
        "memcached",
        &["memcached", "-u", "root", "-p", "11211", "-U", "11211"],
        &[],
    );
    w.serve(
        "aiosmtpd",
        &[
            "/usr/bin/python3",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            "0.0.0.0:25",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "--no-requiretls",
        ],
        &[],
    );
    // Protocols bulkhead does not name: their flows must come out unknown.
    w.serve("iperf3", &["iperf3", "-s"], &[]);
    let repos = format!("{DIR}/repos");
    must(&["git", "init", "-q", "--bare", &format!("{repos}/r.git")]);
    w.serve(
        "git-daemon",
        &[
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=0.0.0.0",
            &format!("--base-path={repos}"),
        ],
        &[],
    );
    // (Its login program exits at once: only the option negotiation is wanted.)
    w.serve(
        "telnetd",
        &["busybox", "telnetd", "-F", "-p", "23", "-l", "/bin/true"],
        &[],
    );
    // Kafka and MongoDB have no server in Debian 12: a sink that accepts and reads,
    // never answering, stands in for one (the clients' first requests are what
    // detection reads; the clients then time out).
    let sink = write("sink.py", SINK);
    w.serve("sink", &["/usr/bin/python3", &sink], &[]);
    if amqp {
        rabbitmq(w);
    }

    let wait = Duration::from_secs(30);
    for (name, kind, port) in [
        ("nginx", 't', 80),
        ("nginx", 't', 81),
        ("nginx", 't', 443),
        ("http.server", 't', 8000),
        ("apache2", 't', 8080),
        ("grpc", 't', 50051),
        ("s_server", 't', 8443),
        ("dnsmasq", 'u', 53),
        ("dnsmasq", 't', 53),
        ("redis", 't', 6379),
        ("postgres", 't', 5432),
        ("mariadb", 't', 3306),
        ("slapd", 't', 389),
        ("sshd", 't', 22),
        ("mosquitto", 't', 1883),
        ("memcached", 't', 11211),
        ("memcached", 'u', 11211),
        ("aiosmtpd", 't', 25),
        ("iperf3", 't', 5201),
        ("git-daemon", 't', 9418),
        ("telnetd", 't', 23),
        ("sink", 't', 9092),
        ("sink", 't', 27017),
    ] {
        listening(name, kind, port, wait);
    }
    if amqp {
        listening("rabbitmq", 't', 5672, wait);
    }
}

/// RabbitMQ 3.10 with its node, files and cookie under `DIR/rabbitmq`, as root.
fn rabbitmq(w: &mut World) {
    let d = format!("{DIR}/rabbitmq");
    std::fs::create_dir_all(&d).expect("rabbitmq dir");
    write("rabbitmq/rabbitmq.conf", "loopback_users = none\n");
    write("rabbitmq/enabled_plugins", "[].\n");
    let env = [
        ("HOME", d.clone()),
        ("RABBITMQ_NODENAME", "bhdpi@localhost".to_string()),
        ("RABBITMQ_MNESIA_BASE", format!("{d}/mnesia")),
        ("RABBITMQ_LOG_BASE", format!("{d}/log")),
        ("RABBITMQ_CONFIG_FILE", format!("{d}/rabbitmq.conf")),
        (
            "RABBITMQ_ENABLED_PLUGINS_FILE",
            format!("{d}/enabled_plugins"),
        ),
        ("RABBITMQ_PID_FILE", format!("{d}/pid")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.serve("rabbitmq", &["/usr/lib/rabbitmq/bin/rabbitmq-server"], &env);
}

/// Every client, from the first byte of its connection unless `midstream`.
fn cases(amqp: bool) -> Vec<Case> {
    let mut c =
        vec![
        // HTTP/1.x: nginx, Python's http.server (HTTP/1.0).
        case("curl GET", "http", "curl -sS http://{url}/")
            .is("method", json!("GET"))
            .is("path", json!("/"))
            .is("host", json!("{url}"))
            .starts("user_agent", "curl/"),
        case("wget POST", "http", "wget -q -O /dev/null --post-data a=1 http://{url}/")
            .is("method", json!("POST"))
            .starts("user_agent", "Wget/"),
        case("curl GET over IPv6", "http", "curl -sS -g http://{url}/")
            .v6()
            .is("host", json!("{url}")),
        case(
            "curl HTTP/1.0 to python http.server",
            "http",
            "curl -sS -0 http://{url}:8000/index.html",
        )
        .is("version", json!("HTTP/1.0"))
        .is("path", json!("/index.html")),
        case("curl HEAD", "http", "curl -sSI http://{url}/").is("method", json!("HEAD")),
        // HTTP/2 cleartext: prior knowledge (nginx), the Upgrade dance (Apache switches,
        // nginx ignores the header and answers in HTTP/1.1).
        case(
            "curl HTTP/2 prior knowledge to nginx",
            "http2",
            "curl -sS --http2-prior-knowledge http://{url}:81/p",
        )
        .is("prior_knowledge", json!(true))
        .is("method", json!("GET"))
        .is("path", json!("/p"))
        .is("authority", json!("{url}:81")),
        case("nghttp prior knowledge to nginx", "http2", "nghttp -n http://{url}:81/n")
            .is("path", json!("/n")),
        case(
            "curl h2c upgrade to Apache (switches)",
            "http2",
            "curl -sS --http2 http://{url}:8080/index.html",
        )
        .is("method", json!("GET"))
        .is("host", json!("{url}:8080"))
        .is("upgrade", json!("h2c"))
        .is("upgraded", json!(true)),
        case(
            "nghttp h2c upgrade to Apache (switches)",
            "http2",
            "nghttp -n -u http://{url}:8080/index.html",
        )
        .is("path", json!("/index.html"))
        .is("upgraded", json!(true)),
        case(
            "curl h2c upgrade to nginx (ignored: HTTP/1.1)",
            "http",
            "curl -sS --http2 http://{url}/",
        )
        .is("upgrade", json!("h2c")),
        case("grpcio unary call", "grpc", "/usr/bin/python3 {dir}/grpc_client.py {url}")
            .is("service", json!("demo.Greeter"))
            .is("method", json!("SayHello")),
        // TLS: OpenSSL, curl (OpenSSL) and wget (GnuTLS) clients.
        case(
            "openssl s_client TLS 1.2",
            "tls",
            "openssl s_client -brief -connect {url}:8443 -servername api.example.test \
             -alpn h2,http/1.1 -tls1_2",
        )
        .is("sni", json!("api.example.test"))
        .is("alpn", json!(["h2", "http/1.1"]))
        .is("version", json!("TLS1.2")),
        case(
            "openssl s_client TLS 1.3",
            "tls",
            "openssl s_client -brief -connect {url}:8443 -servername db.example.test \
             -alpn postgresql -tls1_3",
        )
        .is("sni", json!("db.example.test"))
        .is("alpn", json!(["postgresql"]))
        .is("version", json!("TLS1.3")),
        case(
            "openssl s_client over IPv6",
            "tls",
            "openssl s_client -brief -connect {url}:8443 -servername v6.example.test",
        )
        .v6()
        .is("sni", json!("v6.example.test"))
        .is("version", json!("TLS1.3")),
        case(
            "curl HTTPS to nginx",
            "tls",
            "curl -sS -k --resolve www.example.test:443:{ip} https://www.example.test/",
        )
        .is("sni", json!("www.example.test"))
        .is("alpn", json!(["h2", "http/1.1"]))
        .is("version", json!("TLS1.3")),
        case(
            "wget HTTPS (GnuTLS) to nginx",
            "tls",
            "wget -q -O /dev/null --no-check-certificate https://{url}/",
        )
        .is("version", json!("TLS1.3")),
        // s_server refuses TLS 1.1 (security level): the ClientHello is what counts.
        case(
            "openssl s_client TLS 1.1",
            "tls",
            "openssl s_client -brief -connect {url}:8443 -tls1_1 -cipher DEFAULT@SECLEVEL=0",
        )
        .may_fail()
        .is("version", json!("TLS1.1")),
        // DNS: dnsmasq.
        case("dig over UDP", "dns", "dig +tries=1 +time=5 @{ip} api.example.test A")
            .udp()
            .is("query", json!("api.example.test"))
            .is("qtype", json!(1)),
        case(
            "dig over TCP",
            "dns",
            "dig +tcp +tries=1 +time=5 @{ip} api.example.test AAAA",
        )
        .is("query", json!("api.example.test"))
        .is("qtype", json!(28)),
        case(
            "dig over UDP and IPv6",
            "dns",
            "dig +tries=1 +time=5 @{ip} api.example.test TXT",
        )
        .v6()
        .udp()
        .is("qtype", json!(16)),
        case(
            "dig +keepopen: two queries on one TCP connection",
            "dns",
            "dig +tcp +keepopen +tries=1 +time=5 @{ip} api.example.test a.example.test",
        )
        .is("query", json!("api.example.test")),
        // A, AAAA and MX: three flows (dnsmasq refuses the MX question: exit code 1).
        case("host", "dns", "host api.example.test {ip}")
            .udp()
            .may_fail()
            .is("query", json!("api.example.test")),
        // Redis 7.
        case("redis-cli RESP2", "redis", "redis-cli -h {ip} SET greeting hello")
            .is("command", json!("SET"))
            .is("arguments", json!(2)),
        case("redis-cli RESP3 (HELLO 3)", "redis", "redis-cli -3 -h {ip} GET greeting")
            .is("command", json!("HELLO")),
        case(
            "redis inline command over nc",
            "redis",
            "printf 'PING\\r\\n' | nc -N -w 5 {ip} 6379",
        )
        .is("command", json!("PING"))
        .is("inline", json!(true)),
        case("redis-cli AUTH", "redis", "redis-cli -h {ip} --no-auth-warning -a secret PING")
            .is("command", json!("AUTH")),
        // Its CONFIG GET, then a connection for the inline PING and one for RESP's.
        case(
            "redis-benchmark",
            "redis",
            "redis-benchmark -h {ip} -c 1 -n 5 -t ping -q",
        ),
        // PostgreSQL 15 (TLS on) and MariaDB 10.11.
        case(
            "psql sslmode=disable",
            "postgresql",
            "psql 'host={ip} user=postgres dbname=postgres sslmode=disable' -tAc 'SELECT 1'",
        )
        .is("message", json!("StartupMessage"))
        .is("user", json!("postgres"))
        .is("database", json!("postgres")),
        case(
            "psql sslmode=prefer (SSLRequest, then TLS)",
            "postgresql",
            "psql 'host={ip} user=postgres dbname=postgres sslmode=prefer' -tAc 'SELECT 1'",
        )
        .is("message", json!("SSLRequest")),
        case(
            "openssl s_client -starttls postgres",
            "postgresql",
            "openssl s_client -brief -connect {url}:5432 -starttls postgres",
        )
        .is("message", json!("SSLRequest")),
        case("pg_isready", "postgresql", "pg_isready -h {ip}"),
        case(
            "mariadb client",
            "mysql",
            "mariadb -h {ip} -u root -e 'SELECT VERSION()'",
        )
        .starts("server_version", "5.5.5-10."),
        case(
            "mariadb client --ssl (the server has no TLS)",
            "mysql",
            "mariadb --ssl -h {ip} -u root -e 'SELECT 1'",
        )
        .starts("server_version", "5.5.5-10."),
        // OpenLDAP.
        case(
            "ldapsearch",
            "ldap",
            "ldapsearch -x -H ldap://{url} -b dc=example,dc=test '(uid=alice)'",
        )
        .is("operation", json!("bind")),
        case(
            "ldapsearch StartTLS (-ZZ)",
            "ldap",
            "LDAPTLS_REQCERT=never ldapsearch -x -ZZ -H ldap://{url} -b dc=example,dc=test \
             '(uid=alice)'",
        )
        .is("operation", json!("extended")),
        case(
            "curl LDAP search",
            "ldap",
            "curl -sS 'ldap://{url}/dc=example,dc=test?cn?sub?(uid=alice)'",
        )
        .is("operation", json!("bind")),
        case(
            "openssl s_client -starttls ldap",
            "ldap",
            "openssl s_client -brief -connect {url}:389 -starttls ldap",
        )
        .is("operation", json!("extended")),
        case("ldapwhoami", "ldap", "ldapwhoami -x -H ldap://{url}").is("operation", json!("bind")),
        // OpenSSH: no key is offered, the login fails after the banners and key exchange.
        case(
            "ssh",
            "ssh",
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o ConnectTimeout=5 nobody@{ip} true",
        )
        .may_fail()
        .starts("banner", "SSH-2.0-OpenSSH_"),
        // Mosquitto 2.
        case(
            "mosquitto_pub MQTT 3.1.1",
            "mqtt",
            "mosquitto_pub -h {ip} -V mqttv311 -t sensors/t1 -m 21.5",
        )
        .is("packet", json!("CONNECT"))
        .is("version", json!("3.1.1")),
        case(
            "mosquitto_pub MQTT 5",
            "mqtt",
            "mosquitto_pub -h {ip} -V mqttv5 -t sensors/t1 -m 21.5",
        )
        .is("version", json!("5")),
        case(
            "mosquitto_sub MQTT 3.1",
            "mqtt",
            "mosquitto_sub -h {ip} -V mqttv31 -t 'sensors/#' -E",
        )
        .is("version", json!("3.1")),
        case("curl MQTT publish", "mqtt", "curl -sS -d 21.5 mqtt://{url}/sensors/t1")
            .is("packet", json!("CONNECT")),
        // Nobody answers the request: it times out once its question is published.
        case(
            "mosquitto_rr MQTT 5 request",
            "mqtt",
            "mosquitto_rr -h {ip} -t rpc/req -e rpc/resp -m hi -W 1",
        )
        .may_fail()
        .is("version", json!("5")),
        // memcached 1.6: text and binary protocols.
        case("memcstat text protocol", "memcached", "memcstat --servers={ip}")
            .is("command", json!("version")),
        case(
            "memcstat binary protocol",
            "memcached",
            "memcstat --binary --servers={ip}",
        )
        .is("binary", json!(true))
        // Version, the first request memcstat makes.
        .is("opcode", json!(11)),
        case(
            "memcached set and get over nc",
            "memcached",
            "printf 'set k 0 60 5\\r\\nhello\\r\\nget k\\r\\nquit\\r\\n' | nc -N -w 5 {ip} 11211",
        )
        .is("command", json!("set")),
        // Over UDP (an 8-byte frame header before each message): libmemcached's tools.
        case(
            "memccp over UDP",
            "memcached",
            "memccp --udp --servers={ip}:11211 /etc/debian_version",
        )
        .udp()
        .is("command", json!("set")),
        case(
            "memcached meta commands over nc",
            "memcached",
            "printf 'ms mk 5\\r\\nhello\\r\\nmg mk v\\r\\nmn\\r\\n' | nc -N -w 5 {ip} 11211",
        )
        .is("command", json!("ms")),
        // aiosmtpd (the server speaks first).
        case(
            "swaks to aiosmtpd",
            "smtp",
            "swaks --server {ip}:25 --helo client.example.test --from alice@example.test \
             --to bob@example.test --timeout 10",
        )
        .starts("greeting", "220 "),
        case(
            "swaks STARTTLS to aiosmtpd",
            "smtp",
            "swaks --server {ip}:25 --tls --helo client.example.test \
             --from alice@example.test --to bob@example.test --timeout 10",
        )
        .starts("greeting", "220 "),
        case(
            "curl SMTP",
            "smtp",
            "printf 'Subject: hi\\r\\n\\r\\nhello\\r\\n' | curl -sS smtp://{url} \
             --mail-from alice@example.test --mail-rcpt bob@example.test -T -",
        )
        .starts("greeting", "220 "),
        case(
            "openssl s_client -starttls smtp",
            "smtp",
            "openssl s_client -brief -connect {url}:25 -starttls smtp",
        )
        .starts("greeting", "220 "),
        // nc sends at once: its HELO may come before the greeting or after it.
        case(
            "SMTP HELO over nc",
            "smtp",
            "printf 'HELO x\\r\\nQUIT\\r\\n' | nc -N -w 5 {ip} 25",
        ),
        // Mid-connection: each client connects before the capture starts and speaks
        // once it runs, so the capture holds neither the handshake nor a greeting.
        case(
            "mid-connection: redis-cli",
            "redis",
            "({wait}; printf 'SET a b\\nGET a\\n'; sleep 1) | redis-cli -h {ip}",
        )
        .midstream()
        .is("command", json!("SET")),
        case(
            "mid-connection: HTTP/1.1 over nc",
            "http",
            "({wait}; printf 'GET /m HTTP/1.1\\r\\nHost: m\\r\\n\\r\\n'; sleep 1) | nc -N {ip} 80",
        )
        .midstream()
        .is("path", json!("/m")),
        case(
            "mid-connection: psql",
            "postgresql",
            "({wait}; echo 'SELECT 1;'; sleep 1) \
             | psql 'host={ip} user=postgres dbname=postgres sslmode=disable'",
        )
        .midstream()
        .is("message", json!("Query")),
        case(
            "mid-connection: mariadb",
            "mysql",
            "({wait}; echo 'SELECT 1;'; sleep 1) | mariadb -h {ip} -u root",
        )
        .midstream()
        .is("message", json!("COM_QUERY")),
        case(
            "mid-connection: TLS application data",
            "tls",
            "({wait}; printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) \
             | openssl s_client -quiet -connect {url}:8443",
        )
        .midstream(),
        case(
            "mid-connection: memcached over nc",
            "memcached",
            "({wait}; printf 'get k\\r\\n'; sleep 1) | nc -N {ip} 11211",
        )
        .midstream()
        .is("command", json!("get")),
        case(
            "mid-connection: SMTP over nc",
            "smtp",
            "({wait}; printf 'EHLO m.example.test\\r\\nQUIT\\r\\n'; sleep 1) | nc -N {ip} 25",
        )
        .midstream()
        .is("command", json!("EHLO")),
        // Queries sent before the capture: it holds only their answers (then Terminate,
        // COM_QUIT).
        case(
            "mid-connection: PostgreSQL answer only",
            "postgresql",
            "psql 'host={ip} user=postgres dbname=postgres sslmode=disable' \
             -tAc 'SELECT pg_sleep(2)'",
        )
        .midstream()
        .ready(
            "psql -h {dir}/pg -U postgres -tAc \"SELECT count(*) FROM pg_stat_activity \
             WHERE state = 'active' AND query = 'SELECT pg_sleep(2)'\"",
        )
        .is("message", json!("CommandComplete"))
        .is("tag", json!("SELECT 1")),
        case(
            "mid-connection: MariaDB answer only",
            "mysql",
            "mariadb -h {ip} -u root -e 'SELECT SLEEP(2)'",
        )
        .midstream()
        .ready(
            "mariadb -u root --socket={dir}/mariadb/sock -N -e \"SELECT count(*) FROM \
             information_schema.processlist WHERE info = 'SELECT SLEEP(2)'\"",
        )
        .is("message", json!("ResultSet"))
        .is("columns", json!(1)),
        // A subscriber that only receives: its two PUBLISH come first, from the broker.
        // (The publishers' own connections, opened during the capture, are flows too.)
        case(
            "mid-connection: mosquitto_sub receiving",
            "mqtt",
            "mosquitto_sub -h {ip} -t 'm/#' -C 2 & ({wait}; mosquitto_pub -h {ip} -t m/1 -m 1; \
             mosquitto_pub -h {ip} -t m/2 -m 2); wait",
        )
        .midstream()
        .either_way(),
    ];
    // The same servers through Python libraries (Debian's python3-*).
    c.extend([
        case(
            "redis-py",
            "redis",
            "/usr/bin/python3 {dir}/clients.py redis {url}",
        )
        .is("command", json!("SET")),
        case(
            "PyMySQL",
            "mysql",
            "/usr/bin/python3 {dir}/clients.py pymysql {url}",
        )
        .starts("server_version", "5.5.5-10."),
        case(
            "paho-mqtt",
            "mqtt",
            "/usr/bin/python3 {dir}/clients.py paho {url}",
        )
        .is("packet", json!("CONNECT"))
        .is("version", json!("3.1.1")),
        case(
            "ldap3",
            "ldap",
            "/usr/bin/python3 {dir}/clients.py ldap3 {url}",
        )
        .is("operation", json!("bind")),
        case(
            "dnspython over UDP",
            "dns",
            "/usr/bin/python3 {dir}/clients.py dns-udp {url}",
        )
        .udp()
        .is("query", json!("api.example.test"))
        .is("qtype", json!(15)),
        case(
            "dnspython over TCP",
            "dns",
            "/usr/bin/python3 {dir}/clients.py dns-tcp {url}",
        )
        .is("query", json!("api.example.test"))
        .is("qtype", json!(15)),
        case(
            "httpx HTTP/2 over TLS",
            "tls",
            "/usr/bin/python3 {dir}/clients.py httpx {url}",
        )
        .is("alpn", json!(["http/1.1", "h2"])),
        case(
            "pymemcache",
            "memcached",
            "/usr/bin/python3 {dir}/clients.py pymemcache {url}",
        )
        .is("command", json!("set")),
        case(
            "paramiko",
            "ssh",
            "/usr/bin/python3 {dir}/clients.py paramiko {url}",
        )
        .starts("banner", "SSH-2.0-paramiko_"),
        case(
            "smtplib",
            "smtp",
            "/usr/bin/python3 {dir}/clients.py smtplib {url}",
        )
        .starts("greeting", "220 "),
    ]);
    // Kafka and MongoDB clients against the sink: they wait for answers that never come.
    c.extend([
        case(
            "kcat (librdkafka) metadata request",
            "kafka",
            "kcat -b {url}:9092 -L -m 2",
        )
        .may_fail()
        .is("api", json!("ApiVersions"))
        .starts("client_id", "rdkafka"),
        case(
            "kafka-python consumer",
            "kafka",
            "/usr/bin/python3 -c \"import kafka; kafka.KafkaConsumer(bootstrap_servers='{url}:9092', \
             api_version_auto_timeout_ms=2000)\"",
        )
        .may_fail()
        .is("api", json!("ApiVersions"))
        .starts("client_id", "kafka-python"),
        case(
            "pymongo ping",
            "mongodb",
            "/usr/bin/python3 -c \"import pymongo; pymongo.MongoClient('mongodb://{url}:27017/\
             ?directConnection=true&serverSelectionTimeoutMS=2000').admin.command('ping')\"",
        )
        .may_fail()
        .is("opcode", json!("OP_QUERY")),
    ]);
    // Protocols bulkhead does not name, from real programs: never mistaken for one it does.
    c.extend([
        case(
            "iperf3 control and data (not named)",
            "unknown",
            "iperf3 -c {ip} -n 256K -b 10M",
        ),
        case(
            "git ls-remote, git protocol (not named)",
            "unknown",
            "git ls-remote git://{url}/r.git",
        ),
        case(
            "busybox telnet (not named)",
            "unknown",
            "(sleep 0.5; echo exit) | busybox telnet {ip} 23",
        )
        // The server's login program exits: "Connection closed by foreign host", code 1.
        .may_fail(),
        // Nobody listens: the datagram is what counts.
        case(
            "logger, syslog over UDP (not named)",
            "unknown",
            "logger -n {ip} -P 514 -d 'hello syslog'",
        )
        .udp(),
        // NetBIOS's name service shares DNS's message format (RFC 1002): a node-status
        // query for `*`, nobody answering.
        case(
            "nbtscan, NetBIOS name service (not named)",
            "unknown",
            "nbtscan -t 200 {ip}",
        )
        .udp()
        .may_fail(),
    ]);
    if amqp {
        c.push(
            case(
                "amqp-publish to RabbitMQ",
                "amqp",
                "amqp-publish --url=amqp://guest:guest@{url} -r jobs -b hello",
            )
            .is("version", json!("0-0-9-1")),
        );
        c.push(
            case(
                "pika to RabbitMQ",
                "amqp",
                "/usr/bin/python3 {dir}/clients.py pika {url}",
            )
            .is("version", json!("0-0-9-1")),
        );
    }
    c
}

/// A placeholder-filled string of a case.
fn fill(s: &str, ip: IpAddr) -> String {
    let url = match ip {
        IpAddr::V6(_) => format!("[{ip}]"),
        IpAddr::V4(_) => ip.to_string(),
    };
    let wait = format!("until [ -e {DIR}/capturing ]; do sleep 0.1; done");
    s.replace("{ip}", &ip.to_string())
        .replace("{url}", &url)
        .replace("{dir}", DIR)
        .replace("{wait}", &wait)
}

/// Wait until `probe`, run in the server's namespace, prints 1.
fn server_holds(name: &str, probe: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        let o = in_ns(SRV, &["sh", "-c", probe]).output().expect("a probe");
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if last.trim() == "1" {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name}: the server never held the request: {last}");
}

/// Wait until a client holds an established connection to `ip`.
fn established(name: &str, ip: IpAddr) {
    let dst = ip.to_string();
    for _ in 0..100 {
        let o = in_ns(CLI, &["ss", "-Htn", "state", "established", "dst", &dst])
            .output()
            .expect("ss");
        if !String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name}: no connection to {ip} after 10 s");
}

/// A packet capture (tcpdump or dumpcap) running until [`Capture::stop`].
struct Capture {
    child: Child,
    /// What it writes to stderr after its first line (its summary at exit).
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Capture {
    /// Start `cmd` in `ns` and wait for the line saying it captures (holding `ready`).
    fn start(ns: &str, cmd: &[&str], ready: &str) -> Capture {
        let mut child = in_ns(ns, cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", cmd[0]));
        let mut err = BufReader::new(child.stderr.take().expect("a capture's stderr"));
        // (tcpdump -i any names its link type first.)
        let mut head = String::new();
        while !head.contains(ready) {
            let n = err.read_line(&mut head).unwrap_or(0);
            assert!(n > 0, "{} did not start: {head}", cmd[0]);
        }
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut rest);
            rest
        });
        Capture {
            child,
            stderr: Some(stderr),
        }
    }

    /// Stop (SIGINT, so that the file is complete) and return its summary.
    fn stop(mut self) -> String {
        let _ = run(&["kill", "-INT", &self.child.id().to_string()]);
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// `bulkhead dpi detect FILE -o json`: one JSON object per flow.
fn detect(file: &str) -> Vec<Value> {
    let out = bulkhead(&["dpi", "detect", file, "-o", "json"]);
    assert!(
        out.status.success(),
        "dpi detect {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("dpi detect -o json lines"))
        .collect()
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn real_clients_and_servers_are_detected_in_fresh_captures() {
    if !common::privileged("the fresh-capture detection test") {
        return;
    }
    require(&[
        "tcpdump",
        "editcap",
        "ss",
        "setpriv",
        "curl",
        "wget",
        "nginx",
        "nghttp",
        "apache2",
        "openssl",
        "dig",
        "host",
        "dnsmasq",
        "redis-server",
        "redis-cli",
        "redis-benchmark",
        "nc",
        "psql",
        "pg_isready",
        "mariadb",
        "mariadbd",
        "mariadb-install-db",
        "slapd",
        "slapadd",
        "ldapsearch",
        "ldapwhoami",
        "sshd",
        "ssh",
        "ssh-keygen",
        "mosquitto",
        "mosquitto_pub",
        "mosquitto_sub",
        "mosquitto_rr",
        "memcached",
        "memcstat",
        "swaks",
        "amqp-publish",
        "iperf3",
        "git",
        "busybox",
        "logger",
        "nbtscan",
    ]);
    for module in ["grpc", "aiosmtpd"] {
        let (ok, out) = run(&["/usr/bin/python3", "-c", &format!("import {module}")]);
        assert!(
            ok,
            "python3-{module} is not installed (scripts/setup installs it): {out}"
        );
    }
    assert!(
        Path::new("/usr/lib/postgresql/15/bin/postgres").exists(),
        "PostgreSQL 15 is not installed (scripts/setup installs it)"
    );
    let amqp = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists();
    assert!(
        amqp,
        "rabbitmq-server is not installed (scripts/setup installs it)"
    );
    let _lock = common::lab_lock();
    let started = Instant::now();

    let mut world = World::up();
    let cases = cases(amqp);
    for (i, c) in cases.iter().enumerate() {
        let a = address(i, c.v6);
        let cidr = if c.v6 {
            format!("{a}/64")
        } else {
            format!("{a}/16")
        };
        let mut args = vec!["ip", "-n", SRV, "addr", "add", &cidr, "dev", "eth0"];
        if c.v6 {
            args.push("nodad");
        }
        must(&args);
    }
    write("grpc_client.py", GRPC_CLIENT);
    write("clients.py", PY_CLIENTS);
    servers(&mut world, amqp);
    eprintln!("servers up after {:?}", started.elapsed());

    let client = |i: usize, c: &Case| {
        let line = fill(c.client, address(i, c.v6));
        let mut cmd = in_ns(CLI, &["timeout", "20", "sh", "-c", &line]);
        cmd.current_dir(DIR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    let mut failures = Vec::new();
    let mut failed = |c: &Case, out: std::process::Output| {
        if !out.status.success() && !c.may_fail {
            failures.push(format!(
                "{}: the client failed ({}): {}{}",
                c.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    };
    // Mid-connection clients connect first; the capture starts once each one holds an
    // established connection, and they speak once it runs.
    let mut midstream = Vec::new();
    for (i, c) in cases.iter().enumerate().filter(|(_, c)| c.midstream) {
        midstream.push((c, client(i, c).spawn().expect("starting a client")));
        established(c.name, address(i, c.v6));
        if let Some(probe) = c.ready {
            server_holds(c.name, &fill(probe, address(i, c.v6)));
        }
    }
    // The server's veth (Ethernet frames), and the client's view of all its interfaces
    // (Linux cooked frames, v2 and v1).
    let pcap = format!("{DIR}/fresh.pcap");
    let (sll2, sll1) = (format!("{DIR}/any.pcap"), format!("{DIR}/any-sll.pcap"));
    let tcpdump = |ns, options: &[&str], file| {
        // A large buffer: on a loaded machine three tcpdumps may each fall behind a while.
        let mut cmd = vec![
            "tcpdump",
            "-n",
            "--immediate-mode",
            "-B",
            "32768",
            "-Z",
            "root",
        ];
        cmd.extend_from_slice(options);
        // Not loopback: some clients talk to themselves there (a library's wake-up
        // socket pair), which the server's veth never sees.
        cmd.extend([
            "-w",
            file,
            "(tcp or udp) and not net 127.0.0.0/8 and not host ::1",
        ]);
        Capture::start(ns, &cmd, "listening on")
    };
    let captures = [
        tcpdump(SRV, &["-i", "eth0"], &pcap),
        tcpdump(CLI, &["-i", "any"], &sll2),
        tcpdump(CLI, &["-i", "any", "-y", "LINUX_SLL"], &sll1),
    ];
    write("capturing", "");
    for (i, c) in cases.iter().enumerate().filter(|(_, c)| !c.midstream) {
        failed(c, client(i, c).output().expect("running a client"));
    }
    for (c, child) in midstream {
        failed(c, child.wait_with_output().expect("a client's output"));
    }
    // The last packets (FIN, ACK) have left the clients by now; let the captures read them.
    std::thread::sleep(Duration::from_millis(300));
    let summaries = captures.map(Capture::stop);
    eprintln!("clients done after {:?}", started.elapsed());
    for (file, summary) in [&pcap, &sll2, &sll1].iter().zip(&summaries) {
        eprintln!("{file}: {}", summary.trim().replace('\n', ", "));
        assert!(
            summary
                .lines()
                .any(|l| l.trim() == "0 packets dropped by kernel"),
            "tcpdump dropped packets: {summary}"
        );
    }
    let flows = detect(&pcap);
    // The same packets as pcapng, written by Wireshark's editcap.
    let pcapng = format!("{DIR}/fresh.pcapng");
    must(&["editcap", "-F", "pcapng", &pcap, &pcapng]);
    let ip_of = |f: &Value, end: &str| {
        f[end]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.ip())
    };
    // The client's views and the pcapng hold the same connections: the same answers, flow
    // by flow. (Which end of an `either_way` flow comes first depends on the first packet
    // a capture saw: those are compared server first.)
    let sorted = |flows: &[Value]| {
        let mut v: Vec<String> = flows
            .iter()
            .map(|f| {
                let mut f = f.clone();
                let reversed = (0..cases.len()).any(|i| {
                    cases[i].either_way && ip_of(&f, "dst") == Some(address(i, cases[i].v6))
                });
                if reversed {
                    let (src, dst) = (f["src"].take(), f["dst"].take());
                    (f["src"], f["dst"]) = (dst, src);
                }
                f.to_string()
            })
            .collect();
        v.sort();
        v
    };
    for view in [&sll2, &sll1, &pcapng] {
        let (theirs, ours) = (sorted(&detect(view)), sorted(&flows));
        let differ: Vec<&String> = theirs
            .iter()
            .filter(|f| !ours.contains(f))
            .chain(ours.iter().filter(|f| !theirs.contains(f)))
            .collect();
        if !differ.is_empty() {
            failures.push(format!("{view} and {pcap} do not agree on: {differ:#?}"));
        }
    }
    let mut by_case: BTreeMap<usize, Vec<&Value>> = BTreeMap::new();
    for f in &flows {
        let case_of =
            |end: &str| (0..cases.len()).find(|&i| ip_of(f, end) == Some(address(i, cases[i].v6)));
        match (case_of("dst"), case_of("src")) {
            (Some(i), _) => by_case.entry(i).or_default().push(f),
            (None, Some(i)) if cases[i].either_way => by_case.entry(i).or_default().push(f),
            (None, Some(i)) => failures.push(format!(
                "{}: the flow is the wrong way round (the server is its src): {f}",
                cases[i].name
            )),
            (None, None) => failures.push(format!("a flow of no case: {f}")),
        }
    }
    let mut table = String::new();
    for (i, c) in cases.iter().enumerate() {
        let ip = address(i, c.v6);
        let got = by_case.get(&i).cloned().unwrap_or_default();
        if got.is_empty() {
            failures.push(format!("{}: no flow to {ip} in the capture", c.name));
        }
        for f in got {
            table.push_str(&format!("  {:<44} {f}\n", c.name));
            let mut wrong = Vec::new();
            if f["l4"] != c.l4 {
                wrong.push(format!("l4 {} (expected {})", f["l4"], c.l4));
            }
            if f["protocol"] != c.protocol {
                wrong.push(format!(
                    "protocol {} (expected {})",
                    f["protocol"], c.protocol
                ));
            }
            for (key, want) in &c.detail {
                let have = &f["detail"][key];
                let ok = match want {
                    Want::Is(Value::String(s)) => have.as_str() == Some(&fill(s, ip)),
                    Want::Is(v) => have == v,
                    Want::Starts(p) => have.as_str().is_some_and(|h| h.starts_with(p)),
                };
                if !ok {
                    let expected = match want {
                        Want::Is(Value::String(s)) => json!(fill(s, ip)).to_string(),
                        Want::Is(v) => v.to_string(),
                        Want::Starts(p) => format!("{p}..."),
                    };
                    wrong.push(format!("detail.{key} {have} (expected {expected})"));
                }
            }
            if !wrong.is_empty() {
                failures.push(format!("{}: {}: {f}", c.name, wrong.join(", ")));
            }
        }
    }
    eprintln!("flows by case:\n{table}");
    eprintln!(
        "{} cases, {} flows, done after {:?}",
        cases.len(),
        flows.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures (capture kept in {pcap} with KEEP_DPI_LIVE=1):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
