//! WebSocket end to end: a real server (python3-websockets) behind the agents'
//! transparent proxy, whose HTTP rule allows only `GET /chat`. The upgrade to /chat is
//! decided like any request, the server's `101 Switching Protocols` switches the
//! connection, and messages then pass both ways; an upgrade request for another path is
//! refused with 403 before the server sees it, and is an event.

mod common;

use common::lab::Lab;

const LAB: &str = "l7wstest";

/// A WebSocket client: connect to `url`, send one message, print the answer.
const CLIENT: &str = "import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], open_timeout=10) as ws:
        await ws.send('hello')
        print(await asyncio.wait_for(ws.recv(), 10))
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
