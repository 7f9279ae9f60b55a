//! SQL enforcement end to end, for real: PostgreSQL 15 and MariaDB servers in a lab with
//! the agents' transparent proxy on (fixtures/sql/), psql and mariadb as clients in the
//! app pod. Allowed statements run; refused ones get the database's own error with
//! bulkhead's message, never reach the server, and the connection goes on; the
//! refusals are events.

mod common;

use common::lab::{bulkhead, have, settled};

use std::process::Command;
use std::time::Duration;

const LAB: &str = "l7sql";
const FIXTURES: &str = "crates/cli/tests/fixtures/sql/";
const APP: &str = "shop/shop-0";
const DATA: [&str; 2] = ["/tmp/bulkhead-l7sql-pg", "/tmp/bulkhead-l7sql-my"];

/// Run `cmd` in `workload`: success and stdout + stderr.
fn exec(workload: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["lab", "exec", "--name", LAB, workload, "--"];
    args.extend_from_slice(cmd);
    let o = bulkhead(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text.trim().to_string())
}

/// Brings the lab down (its servers with it) and removes their files, however the test
/// ends.
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = bulkhead(&["lab", "down", "--name", LAB]);
        for d in DATA {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn until_ok(what: &str, mut f: impl FnMut() -> (bool, String)) {
    let mut last = String::new();
    for _ in 0..100 {
        let (ok, out) = f();
        if ok {
            return;
        }
        last = out;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} never succeeded: {last}");
}

fn psql(ip: &str, sql: &str) -> (bool, String) {
    exec(
        APP,
        &[
            "psql", "-h", ip, "-U", "postgres", "-d", "postgres", "-tA", "-c", sql,
        ],
    )
}

fn mariadb(ip: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = vec!["mariadb", "-h", ip, "-u", "app", "-N", "-B"];
    cmd.extend_from_slice(args);
    exec(APP, &cmd)
}

#[test]
fn sql_statements_are_enforced_by_the_proxy() {
    if !common::privileged("the L7 SQL lab test") {
        return;
    }
    for p in [
        "psql",
        "mariadb",
        "mariadbd",
        "mariadb-install-db",
        "setpriv",
    ] {
        assert!(have(p), "{p} is not installed (scripts/setup installs it)");
    }
    assert!(
        std::path::Path::new("/usr/lib/postgresql/15/bin/postgres").exists(),
        "PostgreSQL 15 is not installed (scripts/setup installs it)"
    );
    let _lock = common::lab_lock();
    let _ = bulkhead(&["lab", "down", "--name", LAB]);
    // KEEP_LAB=1 leaves the lab up to look into a failure (`lab down --name l7sql`).
    let _lab = if std::env::var("KEEP_LAB").is_ok() {
        None
    } else {
        Some(Lab)
    };
    let up = bulkhead(&[
        "lab",
        "up",
        "-f",
        FIXTURES,
        "--l7-proxy",
        "--name",
        LAB,
        "-o",
        "json",
    ]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&up.stdout).expect("lab up -o json");
    let ip = |name: &str| {
        status["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .find(|w| w["name"] == name)
            .and_then(|w| w["ipv4"].as_str())
            .unwrap_or_else(|| panic!("{name} and its address"))
            .to_string()
    };
    let (pg, my) = (ip("shop/postgres-0"), ip("shop/mariadb-0"));

    // Tables, made over each server's local socket (no proxy on that path).
    until_ok("creating the PostgreSQL table", || {
        exec(
            "shop/postgres-0",
            &[
                "psql",
                "-h",
                DATA[0],
                "-U",
                "postgres",
                "-c",
                "CREATE TABLE IF NOT EXISTS items (id int); TRUNCATE items; INSERT INTO items VALUES (1), (2)",
            ],
        )
    });
    until_ok("creating the MariaDB table and user", || {
        exec(
            "shop/mariadb-0",
            &[
                "mariadb",
                "-uroot",
                &format!("--socket={}/sock", DATA[1]),
                "-e",
                "CREATE DATABASE IF NOT EXISTS shop; CREATE OR REPLACE TABLE shop.items (id int); \
                 INSERT INTO shop.items VALUES (1), (2); CREATE USER IF NOT EXISTS app@'%'; \
                 GRANT ALL ON *.* TO app@'%'",
            ],
        )
    });

    // PostgreSQL: psql's default sslmode=prefer asks for TLS, the proxy says no.
    until_ok("psql through the proxy", || psql(&pg, "SELECT 1"));
    assert_eq!(psql(&pg, "SELECT count(*) FROM items"), (true, "2".into()));
    let (ok, out) = psql(&pg, "INSERT INTO items VALUES (3)");
    assert!(ok, "INSERT answered {out:?}");
    let (ok, out) = psql(&pg, "DELETE FROM items");
    assert!(
        !ok && out.contains("bulkhead: DELETE statements are not allowed by policy"),
        "DELETE answered {out:?}"
    );
    // A SELECT policy allows, carrying an injected tautology: the sql-injection sensor
    // of the databases group refuses it with the server's own kind of error.
    let (ok, out) = psql(&pg, "SELECT count(*) FROM items WHERE id = '1' OR '1'='1'");
    assert!(
        !ok && out.contains("refused by sensor sql-injection (sqli)"),
        "the injected SELECT answered {out:?}"
    );
    assert_eq!(
        psql(&pg, "SELECT count(*) FROM items WHERE id = 1"),
        (true, "1".into())
    );
    // One query string with an allowed and a refused statement: refused as a whole.
    let (ok, out) = psql(&pg, "SELECT 1; DROP TABLE items");
    assert!(
        !ok && out.contains("DDL statements are not allowed"),
        "{out}"
    );
    // Several statements on one connection: the refusal does not break it.
    let (_, out) = exec(
        APP,
        &[
            "sh",
            "-c",
            &format!(
                "printf 'SELECT 10;\\nDELETE FROM items;\\nSELECT count(*) FROM items;\\n' | psql -h {pg} -U postgres -tA"
            ),
        ],
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    // (stdout and stderr come apart: the lines, not their order.)
    assert!(lines.contains(&"10"), "{out}");
    assert!(
        lines.iter().any(|l| l.contains("bulkhead: DELETE")),
        "{out}"
    );
    assert!(lines.contains(&"3"), "the DELETE reached the server: {out}");

    // No row the transactions below tried to add is left: each was rolled back.
    let none_left = |rows: &str| {
        let count = format!("SELECT count(*) FROM items WHERE {rows}");
        assert_eq!(psql(&pg, &count), (true, "0".into()), "{rows}");
    };

    // A refusal inside a transaction block aborts the block, as PostgreSQL aborts one
    // on an error: the COMMIT after it rolls back, and the INSERT before it is gone.
    let (_, out) = exec(
        APP,
        &[
            "sh",
            "-c",
            &format!(
                "printf 'BEGIN;\\nINSERT INTO items VALUES (9);\\nDELETE FROM items;\\nCOMMIT;\\n' \\
                 | psql -h {pg} -U postgres 2>&1"
            ),
        ],
    );
    // (The error reads as the proxy's own: nothing of the `DO` block that raised it.)
    assert!(
        out.contains("bulkhead: DELETE statements are not allowed by policy")
            && out.contains("ROLLBACK")
            && !out.contains("CONTEXT"),
        "{out}"
    );
    none_left("id = 9");

    // The same with the extended protocol, through psycopg 3 (which binds parameters
    // on the server): the refused DELETE's Parse is raised by the server, so the
    // transaction psycopg opened is aborted and its commit rolls the INSERT back.
    let script = format!(
        "import psycopg\n\
         c = psycopg.connect(host='{pg}', user='postgres', dbname='postgres')\n\
         cur = c.cursor()\n\
         for n in (10, 11):\n\
         \x20   cur.execute('INSERT INTO items VALUES (%s)', (n,))\n\
         \x20   try:\n        cur.execute('DELETE FROM items WHERE id = %s', (n,))\n\
         \x20   except psycopg.Error as e:\n        print('refused', e.sqlstate, e)\n\
         \x20   print('status', c.info.transaction_status.name)\n\
         \x20   c.commit()\n"
    );
    let (ok, out) = exec(APP, &["/usr/bin/python3", "-c", &script]);
    // Twice on one connection: the second raise finds the first one's statement.
    let refused = "refused 42501 bulkhead: DELETE statements are not allowed by policy";
    assert!(
        ok && out.matches(refused).count() == 2
            && out.matches("status INERROR").count() == 2
            && !out.contains("PL/pgSQL"),
        "{out}"
    );
    none_left("id >= 10");

    // A client that opens its transaction as pgjdbc does: BEGIN in the same batch as
    // the statements, one write, so the server still says "idle" when the DELETE is
    // refused; it is raised all the same, and the COMMIT rolls the INSERT back.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sql/begin_in_batch.py"
    );
    let (ok, out) = exec(
        APP,
        &[
            "/usr/bin/python3",
            script,
            &pg,
            "INSERT INTO items VALUES (12)",
            "DELETE FROM items WHERE id = 12",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        ok && lines
            == [
                "status I",
                "error 42501 bulkhead: DELETE statements are not allowed by policy",
                "status E",
                "status I"
            ],
        "{out}"
    );
    none_left("id = 12");

    // The extended protocol (Parse/Bind/Execute/Sync), through pgbench: a prepared
    // SELECT runs, a DELETE is refused at its Parse.
    let pgbench = |mode: &str, sql: &str| {
        let script = format!("{}/bench-{mode}.sql", DATA[0]);
        std::fs::write(&script, format!("{sql}\n")).expect("writing a pgbench script");
        exec(
            APP,
            &[
                "pgbench", "-h", &pg, "-U", "postgres", "-n", "-M", mode, "-t", "20", "-f",
                &script, "postgres",
            ],
        )
    };
    let (ok, out) = pgbench("prepared", "SELECT count(*) FROM items");
    assert!(ok && out.contains("processed: 20/20"), "{out}");
    let (ok, out) = pgbench("extended", "DELETE FROM items");
    assert!(
        !ok && out.contains("bulkhead: DELETE statements are not allowed by policy"),
        "{out}"
    );
    // Statements hidden from a lexer that reads the text otherwise than PostgreSQL
    // (audit): `--` ends at \r too, `x$q$` is one name. Refused; no row is gone.
    for hidden in [
        "SELECT 1; --\rDELETE FROM items",
        "SELECT 1 AS x$q$; DELETE FROM items; --$q$",
    ] {
        let (ok, out) = psql(&pg, hidden);
        assert!(
            !ok && out.contains("bulkhead: DELETE statements are not allowed by policy"),
            "{hidden:?} answered {out:?}"
        );
    }
    assert_eq!(psql(&pg, "SELECT count(*) FROM items"), (true, "3".into()));

    // MariaDB: SELECT only.
    until_ok("mariadb through the proxy", || {
        mariadb(&my, &["-e", "SELECT 1"])
    });
    assert_eq!(
        mariadb(&my, &["-e", "SELECT count(*) FROM shop.items"]),
        (true, "2".into())
    );
    // The greeting the client saw offered neither compression nor TLS: --compress and
    // --ssl (which in the 10.11 client prefers TLS, like sslmode=prefer) go on in clear,
    // where the proxy reads them.
    for flag in ["--compress", "--ssl"] {
        assert_eq!(
            mariadb(&my, &[flag, "-e", "SELECT 7"]),
            (true, "7".into()),
            "{flag}"
        );
    }
    let (ok, out) = mariadb(&my, &["-e", "DELETE FROM shop.items"]);
    assert!(
        !ok && out.contains("1142") && out.contains("bulkhead: DELETE statements are not allowed"),
        "DELETE answered {out:?}"
    );
    // A comment for MySQL 9.99.99, which MariaDB skips: what follows it runs (audit).
    let hidden = "/*!99999 SELECT '*/ DELETE FROM shop.items; -- '";
    let (ok, out) = mariadb(&my, &["-e", hidden]);
    assert!(
        !ok && out.contains("bulkhead: DELETE statements are not allowed"),
        "{hidden:?} answered {out:?}"
    );
    assert_eq!(
        mariadb(&my, &["-e", "SELECT count(*) FROM shop.items"]),
        (true, "2".into())
    );
    // Several statements on one connection (`-e` would stop at the first error).
    let (_, out) = exec(
        APP,
        &[
            "sh",
            "-c",
            &format!(
                "printf 'SELECT 10;\\nDROP TABLE shop.items;\\nSELECT count(*) FROM shop.items;\\n' \\
                 | mariadb -h {my} -u app -N -B --force 2>&1"
            ),
        ],
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    // (--force echoes the failed statement between dashes.)
    assert_eq!(lines.last(), Some(&"2"), "{out}");
    assert!(lines.contains(&"10"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("DDL statements are not allowed")),
        "{out}"
    );
    assert!(lines.contains(&"2"), "the DROP reached the server: {out}");

    // The refusals are events, with the request and the refusal.
    let events = settled(&["events", "--lab", LAB, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    let refused = |request: &str| {
        events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "request" && e["request"] == request)
            .unwrap_or_else(|| panic!("no event for {request}: {events}"))
    };
    let sqli = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "sensor")
        .unwrap_or_else(|| panic!("no sensor event: {events}"));
    assert_eq!(sqli["blocked"], true, "{sqli}");
    assert_eq!(sqli["findings"][0]["class"], "sqli", "{sqli}");
    assert_eq!(sqli["findings"][0]["sensor"], "sql-injection", "{sqli}");
    assert_eq!(sqli["dst"]["workload"], "shop/postgres-0", "{sqli}");
    for (request, refusal, statement) in [
        (
            "postgresql delete",
            "DELETE statements",
            "DELETE FROM items",
        ),
        ("postgresql ddl", "DDL statements", "DROP TABLE items"),
        (
            "mysql delete",
            "DELETE statements",
            "DELETE FROM shop.items",
        ),
        ("mysql ddl", "DDL statements", "DROP TABLE shop.items"),
    ] {
        let e = refused(request);
        assert_eq!(e["decision"]["allowed"], false, "{e}");
        assert!(
            e["refusal"].as_str().is_some_and(|r| r.contains(refusal)),
            "{e}"
        );
        // The capture holds the refused statement, and tshark dissects it.
        let pcap = e["pcap"].as_str().expect("a capture");
        let t = Command::new("tshark")
            .args(["-r", pcap, "-V"])
            .output()
            .expect("tshark");
        let text = String::from_utf8_lossy(&t.stdout);
        assert!(
            t.status.success() && text.contains(statement),
            "tshark on {pcap}: {text} {}",
            String::from_utf8_lossy(&t.stderr)
        );
    }
}
