//! WebSocket end to end: a real server (python3-websockets) behind the agents'
//! transparent proxy, whose HTTP rule allows only `GET /chat`. The upgrade to /chat is
//! decided like any request, the server's `101 Switching Protocols` switches the
//! connection, and messages then pass both ways; an upgrade request for another path is
//! refused with 403 before the server sees it, and is an event. The chat group has a
//! blocking sensor: every message is inspected (the proxy removes the client's offer of
//! permessage-deflate, which would hide them), and one carrying a SQL injection gets a
//! Close frame (1008) from the proxy, never reaches the server, and is an event.

mod common;

use common::lab::{Lab, sensor_findings};

const LAB: &str = "l7wstest";

/// A WebSocket client: connect to `url`, send one message, print the answer.
const CLIENT: &str = "import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], open_timeout=10) as ws:
        await ws.send('hello')
        print(await asyncio.wait_for(ws.recv(), 10))
asyncio.run(main())";

/// Send each message in turn, printing each answer, or `closed CODE` if the connection
/// is closed instead.
const CONVERSATION: &str = "import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], open_timeout=10) as ws:
        for m in sys.argv[2:]:
            await ws.send(m)
            try:
                print(await asyncio.wait_for(ws.recv(), 10))
            except websockets.exceptions.ConnectionClosed as e:
                print('closed', e.rcvd.code if e.rcvd else None)
                return
asyncio.run(main())";

#[test]
fn websocket_upgrades_are_decided_and_then_pass() {
    if !common::privileged("the WebSocket lab test") {
        return;
    }
    let import = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import websockets"])
        .output();
    assert!(
        import.is_ok_and(|o| o.status.success()),
        "python3-websockets is not installed (scripts/setup installs it)"
    );
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/websocket/"], &[]);
    let ip = lab.ipv4("chat/server-0");
    let client = |path: &str| {
        let url = format!("ws://{ip}:8765{path}");
        lab.run("chat/browser-0", &["/usr/bin/python3", "-c", CLIENT, &url])
    };
    // The server takes a moment to listen: retry the allowed path until it answers.
    let start = std::time::Instant::now();
    let chat = loop {
        let r = client("/chat");
        if r.0 || start.elapsed().as_secs() > 20 {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(chat.0 && chat.1.contains("echo: hello"), "{}", chat.1);
    // Messages are inspected: a clean one is echoed, an injection closes the connection
    // and never reaches the server (which counts the ones that do).
    let url = format!("ws://{ip}:8765/chat");
    let talk = |msgs: &[&str]| {
        let mut args = vec!["/usr/bin/python3", "-c", CONVERSATION, &url];
        args.extend(msgs);
        lab.run("chat/browser-0", &args).1
    };
    let out = talk(&["hi", "1' UNION SELECT password FROM users--", "after"]);
    assert_eq!(out.trim(), "echo: hi\nclosed 1008", "{out}");
    assert_eq!(talk(&["seen?"]).trim(), "seen: 0");
    assert!(
        lab.events().iter().any(|e| e["event"] == "sensor"
            && e["findings"][0]["class"] == "sqli"
            && e["findings"][0]["location"] == "websocket"),
        "no event for the blocked message: {:#?}",
        lab.events()
    );
    // The server's messages are read for their payloads: a card number it sends in two
    // fragments (a frame header between the halves) is found whole.
    assert_eq!(talk(&["card?"]).trim(), "card 4111 1111 1111 1111");
    let card = |e: &[serde_json::Value]| {
        sensor_findings(e, Some(false)).contains(&("credit_card".into(), "response body".into()))
    };
    let events = lab.events_until(card);
    assert!(card(&events), "no event for the card: {events:#?}");
    let (ok, out) = client("/admin");
    assert!(!ok && out.contains("403"), "{out}");
    assert!(
        lab.events().iter().any(|e| e["event"] == "request"
            && e["request"]
                .as_str()
                .is_some_and(|r| r.starts_with("http GET /admin"))
            && e["decision"]["allowed"] == false),
        "no event for the refused upgrade"
    );
}
