#!/usr/bin/env python3
"""A deliberately SQL-injectable web app, for recording what sqlmap really sends.

Listens on 127.0.0.1 only. Every parameter value it receives (query string, form body,
and the User-Agent, Referer and Cookie headers, which sqlmap tests at --level 3) is
appended to LOG as `location<TAB>value`, the value as the application sees it
(percent- and form-decoded by the framework) and written with the corpora's minimal
percent-escaping (`%`, control bytes and non-ASCII as %XX).

    python3 vulnapp.py PORT LOG

Endpoints (SQLite in memory, queries built by string concatenation, errors shown):
  GET  /item?id=1         SELECT ... WHERE id=<id>                 (numeric)
  POST /search  name=x    SELECT ... WHERE name='<name>'           (string)
  GET  /find?q=x          SELECT ... WHERE name LIKE '%<q>%'       (string in LIKE)
  GET  /safe?id=1         SELECT ... WHERE id=?   (bound: not injectable, so sqlmap
                          tries every DBMS's payloads and gives up)
"""

import http.server
import sqlite3
import sys
import threading
import urllib.parse

PORT = int(sys.argv[1])
LOG = open(sys.argv[2], "a", encoding="ascii")
LOCK = threading.Lock()

DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.executescript(
    """
    CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL);
    INSERT INTO items VALUES (1, 'widget', 9.5), (2, 'gadget', 12.0), (3, 'doohickey', 3.25);
    CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT, password TEXT);
    INSERT INTO users VALUES (1, 'admin', 's3cret'), (2, 'alice', 'hunter2');
    """
)


def escape(value: bytes) -> str:
    out = []
    for b in value:
        if b == 0x25 or b < 0x20 or b >= 0x7F:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def record(location: str, value: str) -> None:
    raw = value.encode("utf-8", "surrogateescape")
    with LOCK:
        LOG.write("%s\t%s\n" % (location, escape(raw)))
        LOG.flush()


def params(text: str):
    # Bytes as sent (latin-1 keeps every byte), decoded the way frameworks decode a form.
    return urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="utf-8",
                                  errors="surrogateescape")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def headers_seen(self):
        for h in ("User-Agent", "Referer", "Cookie"):
            v = self.headers.get(h)
            if v is not None:
                record("header:" + h.lower(), v)

    def answer(self, sql, args=()):
        try:
            rows = DB.execute(sql, args).fetchall()
            body = "<html><body><ul>%s</ul></body></html>" % "".join(
                "<li>%s</li>" % " | ".join(str(c) for c in r) for r in rows
            )
            code = 200
        except Exception as e:  # the error is the page: sqlmap's error heuristics see it
            body = "<html><body>SQL error: %s (%s)</body></html>" % (type(e).__name__, e)
            code = 500
        data = body.encode("utf-8", "replace")
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.headers_seen()
        url = urllib.parse.urlsplit(self.path)
        q = params(url.query)
        for k, v in q:
            record("query:" + k, v)
        d = dict(q)
        if url.path == "/item":
            self.answer("SELECT id, name, price FROM items WHERE id=" + d.get("id", "1"))
        elif url.path == "/find":
            self.answer("SELECT id, name FROM items WHERE name LIKE '%" + d.get("q", "") + "%'")
        elif url.path == "/safe":
            self.answer("SELECT id, name, price FROM items WHERE id=?", (d.get("id", "1"),))
        else:
            self.answer("SELECT 1 WHERE 0")

    def do_POST(self):
        self.headers_seen()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("latin-1")
        q = params(body)
        for k, v in q:
            record("form:" + k, v)
        d = dict(q)
        if self.path.startswith("/search"):
            self.answer("SELECT id, name, price FROM items WHERE name='" + d.get("name", "") + "'")
        else:
            self.answer("SELECT 1 WHERE 0")


if __name__ == "__main__":
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    srv.serve_forever()
