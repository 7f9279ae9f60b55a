//! The Redis socket path end to end: the bundled example in a lab whose agents decide
//! Redis commands between workloads of a node at the client's socket
//! (`--redis-socket-path`), with a real redis-server and redis-cli. The same answers as
//! through the proxy (GET and SET work, FLUSHALL gets Redis's own refusal and never
//! runs, another protocol on the Redis port is refused), the programs counted them, and
//! the refusal is an event with the deciding rule and a capture tshark reads.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::{
    Lab, NOPERM, ask, bulkhead, capture_text, hold, require, until_reply, without_get,
};

const LAB: &str = "l7sock";

#[test]
fn redis_commands_are_decided_at_the_socket() {
    if !common::privileged("the socket path lab test") {
        return;
    }
    require(&["redis-server", "redis-cli", "curl", "tshark"]);
    let _lock = common::lab_lock();
    // A copy of the example, so that the test can change its policy (below).
    let examples = common::lab::copy_examples();
    let dir = format!("{}/", examples.path().display());
    let lab = Lab::up_with(
        LAB,
        &[&dir, "examples/lab/l7.yaml"],
        &[],
        &["--redis-socket-path"],
    );
    let exec = |workload: &str, cmd: &[&str]| lab.run(workload, cmd);
    let ip = lab.ipv4("platform/redis-0");
    lab.wait_for_redis(&ip);
    let set = exec(
        "platform/node-api-0",
        &["redis-cli", "-h", &ip, "SET", "k", "v1"],
    );
    assert_eq!(set.1, "OK");
    let (_, flush) = exec("platform/node-api-0", &["redis-cli", "-h", &ip, "FLUSHALL"]);
    assert!(flush.contains("NOPERM"), "FLUSHALL answered {flush:?}");
    let (_, piped) = exec(
        "platform/node-api-0",
        &[
            "sh",
            "-c",
            &format!("printf 'SET a 1\\r\\nFLUSHDB\\r\\nGET k\\r\\n' | redis-cli -h {ip}"),
        ],
    );
    let lines: Vec<&str> = piped.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{piped}");
    assert_eq!(lines[0], "OK");
    assert!(lines[1].contains("NOPERM"), "{piped}");
    assert_eq!(lines[2], "v1", "FLUSHALL or FLUSHDB reached the server");
    // Inline commands (telnet style), decided as the proxy decides them.
    let (_, inline) = exec(
        "platform/node-api-0",
        &[
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/tcp/{ip}/6379; printf 'PING\\r\\nFLUSHALL\\r\\nGET k\\r\\n' >&3; timeout 2 cat <&3"
            ),
        ],
    );
    assert!(
        inline.starts_with("+PONG") && inline.contains("-NOPERM") && inline.contains("v1"),
        "inline: {inline:?}"
    );
    // A bulk load as Redis's documentation tells it (`redis-cli --pipe` writes the file
    // 16 KiB at a time, cutting commands anywhere, then asks ECHO for a tag to know the
    // last reply came): every command answered, none refused. (Before, the program
    // lost its place in the stream at the first write cut inside a header just after
    // whole commands, and refused the rest of the connection: the load stopped after a
    // few thousand keys and redis-cli waited forever.)
    let bulk = tempfile::NamedTempFile::new().unwrap();
    let mut text = Vec::new();
    for i in 0..50_000 {
        let (k, v) = (format!("bulk:{i}"), format!("value-{}", i * 7));
        text.extend(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .bytes(),
        );
    }
    std::fs::write(bulk.path(), &text).unwrap();
    let (ok, piped) = exec(
        "platform/node-api-0",
        &[
            "sh",
            "-c",
            &format!(
                "timeout 60 redis-cli -h {ip} --pipe < {}",
                bulk.path().display()
            ),
        ],
    );
    assert!(
        ok && piped.contains("errors: 0, replies: 50000"),
        "redis-cli --pipe: {piped}"
    );
    // IPv6: decided at the socket too ("this command" is the program's wording; the
    // proxy's names the command).
    let ip6 = lab.ipv6("platform/redis-0");
    let set6 = exec(
        "platform/node-api-0",
        &["redis-cli", "-h", &ip6, "SET", "k6", "v6"],
    );
    assert_eq!(set6.1, "OK");
    let (_, flush6) = exec(
        "platform/node-api-0",
        &["redis-cli", "-h", &ip6, "FLUSHALL"],
    );
    assert!(
        flush6.contains("NOPERM bulkhead: this command is not allowed"),
        "FLUSHALL over IPv6 answered {flush6:?}"
    );
    // Another protocol on the Redis port (its client's writes fail), and a workload no
    // rule allows (refused at layer 4, as without the path).
    lab.redis_refuses_others(&ip);

    // The commands went through the programs, not the proxy.
    // (status.json is rewritten every 2 s when idle.)
    let counted = |s: &serde_json::Value, k: &str| s["socket_path"][k].as_u64().unwrap_or(0);
    let start = std::time::Instant::now();
    let status = loop {
        let all = lab.agent_statuses();
        let found = all.into_iter().find(|s| {
            counted(s, "allowed") >= 3 && counted(s, "refused") >= 3 && counted(s, "not_resp") >= 1
        });
        if let Some(s) = found {
            break s;
        }
        assert!(start.elapsed().as_secs() < 10, "{:?}", lab.agent_statuses());
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(counted(&status, "pairs") >= 1, "{status}");
    assert!(counted(&status, "refused") >= 2, "{status}");
    assert!(counted(&status, "not_resp") >= 1, "{status}");
    // The flow records of the connections it took agree with the engine.
    assert_eq!(status["inconsistent_flows"], 0, "{status}");

    // Each refusal is an event: the engine's deciding rule, the path, a capture.
    let start = std::time::Instant::now();
    let events: Vec<serde_json::Value> = loop {
        let o = bulkhead(&["events", "--lab", LAB, "--all", "-o", "json"]);
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let socket = |e: &&serde_json::Value| e["decision"]["detail"]["path"] == "socket";
        if events.iter().filter(socket).count() >= 3 || start.elapsed().as_secs() > 10 {
            break events.into_iter().filter(|e| socket(&e)).collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let flush = events
        .iter()
        .find(|e| e["event"] == "request" && e["request"] == "redis FLUSHALL")
        .unwrap_or_else(|| panic!("no socket-path event for FLUSHALL: {events:?}"));
    assert_eq!(flush["decision"]["allowed"], false);
    assert!(flush["refusal"].as_str().unwrap().starts_with("-NOPERM"));
    assert_eq!(
        flush["decision"]["detail"]["src"]["workload"],
        "platform/node-api-0"
    );
    let by = flush["decision"]["decided_by"].as_str().unwrap_or("");
    // No rule names FLUSHALL: the group's Protect mode refuses it (as `explain` says).
    assert_eq!(by, "ingress: Protect mode (group redis)");
    let pcap = flush["pcap"].as_str().expect("a capture");
    let text = capture_text(pcap, &[]);
    assert!(text.contains("FLUSHALL"), "tshark on {pcap}: {text}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "request" && e["request"] == "redis FLUSHDB"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "protocol" && e["protocol"] == "unknown"),
        "no event for the HTTP attempt: {events:?}"
    );

    policy_edits_reach_live_connections(&ip, examples.path());
    monitor_mode_passes_and_reports(&lab, &ip, examples.path());
    restarts(&lab, &ip);
}

/// With the Redis group in Monitor mode, the path still decides the connection: what
/// Protect refused runs, and each such command is an event (allowed, a violation), as
/// the proxy would record it.
fn monitor_mode_passes_and_reports(lab: &Lab, ip: &str, examples: &std::path::Path) {
    let mut held = hold(LAB, ip, "platform/node-api-0");
    assert_eq!(ask(&mut held, &["TYPE", "k"]), Ok(NOPERM.into()));
    let groups = examples.join("groups.yaml");
    let text = std::fs::read_to_string(&groups).unwrap();
    let protect = "selector: app == \"redis\"\n  mode: Protect";
    assert!(text.contains(protect), "the example's redis group moved");
    let monitor = text.replace(protect, "selector: app == \"redis\"\n  mode: Monitor");
    std::fs::write(&groups, &monitor).unwrap();
    until_reply(
        &mut held,
        &["TYPE", "k"],
        "+string\r\n".into(),
        "TYPE still refused in Monitor mode",
    );
    // A new connection takes the path too (the programs count what they report).
    let (_, typed) = lab.run("platform/node-api-0", &["redis-cli", "-h", ip, "TYPE", "k"]);
    assert_eq!(typed, "string");
    let reported = |s: &serde_json::Value| s["socket_path"]["reported"].as_u64().unwrap_or(0);
    let start = Instant::now();
    while !lab.agent_statuses().iter().any(|s| reported(s) >= 2) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            lab.agent_statuses()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    let event = loop {
        let o = bulkhead(&["events", "--lab", LAB, "--all", "-o", "json"]);
        let found = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| {
                e["request"] == "redis TYPE"
                    && e["decision"]["allowed"] == true
                    && e["decision"]["detail"]["path"] == "socket"
            });
        if let Some(e) = found {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no Monitor event"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(event["decision"]["violation"], true, "{event}");
    assert_eq!(
        event["decision"]["decided_by"], "ingress: Monitor mode (group redis)",
        "{event}"
    );
    // And back to Protect.
    std::fs::write(&groups, &text).unwrap();
    until_reply(
        &mut held,
        &["TYPE", "k"],
        NOPERM.into(),
        "TYPE still allowed back in Protect mode",
    );
}

/// A policy edit reaches a connection the socket path holds at its next command: the
/// agent plans again and the program looks the table up on every write.
fn policy_edits_reach_live_connections(ip: &str, examples: &std::path::Path) {
    let mut held = hold(LAB, ip, "platform/node-api-0");
    assert_eq!(ask(&mut held, &["GET", "k"]), Ok("$2\r\nv1\r\n".into()));
    let policies = examples.join("policies.yaml");
    let text = std::fs::read_to_string(&policies).unwrap();
    std::fs::write(&policies, without_get(&text)).unwrap();
    until_reply(
        &mut held,
        &["GET", "k"],
        NOPERM.into(),
        "GET still allowed after the edit",
    );
    assert_eq!(ask(&mut held, &["SET", "k", "v1"]), Ok("+OK\r\n".into()));
    // And back.
    std::fs::write(&policies, &text).unwrap();
    until_reply(
        &mut held,
        &["GET", "k"],
        "$2\r\nv1\r\n".into(),
        "GET not allowed again",
    );
}

/// The agent's process (found by its state directory, as `lab down` finds it).
fn agent_pid(dir: &str) -> Option<(i32, Vec<String>)> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = (raw.split(|&b| b == 0))
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) == Some("agent") && args.iter().any(|a| a == dir) {
            return Some((pid, args));
        }
    }
    None
}

/// Restarts: the pinned programs keep deciding while the agent is away; an agent started
/// without the flag retires them (a connection they hold has its next write refused) and
/// new connections go through the proxy again.
fn restarts(lab: &Lab, ip: &str) {
    let mut held = hold(LAB, ip, "platform/node-api-0");
    assert_eq!(ask(&mut held, &["GET", "k"]), Ok("$2\r\nv1\r\n".into()));
    let dir = format!("/run/bulkhead/labs/{LAB}/agents/node-1");
    let (pid, args) = agent_pid(&dir).expect("the lab's agent");
    assert!(args.iter().any(|a| a == "--redis-socket-path"), "{args:?}");
    let stop = |pid: i32| {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let start = Instant::now();
        // Gone, or a zombie its parent has not reaped yet.
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                st.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        };
        while alive(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the agent did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    stop(pid);
    // Nobody drives the programs: still decided by the last tables.
    assert_eq!(ask(&mut held, &["FLUSHALL"]), Ok(NOPERM.into()));
    // Restarted without the socket path (and so without the key that goes with it).
    let mut rest: Vec<&String> = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--redis-socket-path" => {}
            "--vouch-key" => {
                it.next();
            }
            _ => rest.push(a),
        }
    }
    let log = std::fs::File::create(format!("{dir}/agent-restarted.log")).unwrap();
    let mut child = Command::new(&args[0])
        .args(rest)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("restart the agent");
    let start = Instant::now();
    let status = |k: &str| -> Option<u64> {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/status.json")).ok()?).ok()?;
        s[k].as_u64()
    };
    while status("pid") != Some(u64::from(child.id())) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the restarted agent never got ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        matches!(
            ask(&mut held, &["GET", "k"]),
            Err(std::io::ErrorKind::PermissionDenied)
        ),
        "a connection of the retired path went on"
    );
    let (_, flush) = lab.run("platform/node-api-0", &["redis-cli", "-h", ip, "FLUSHALL"]);
    assert!(
        flush.contains("command 'FLUSHALL' is not allowed"),
        "through the proxy: {flush}"
    );
    assert!(
        std::fs::read_dir("/sys/fs/bpf/bulkhead")
            .map(|d| d
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().contains(LAB)))
            .unwrap_or(true)
    );
    stop(child.id() as i32);
    let _ = child.wait();
}
