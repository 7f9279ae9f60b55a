#!/usr/bin/env python3
"""The test site for held-out attack traffic (run.sh): 127.0.0.1 only.
Pages link to query parameters and hold GET and POST forms, and reflect input
(unescaped), so the XSS, SQL injection and fuzzing scripts find places to inject.
Two pages are vulnerable for real, so exploitation tools go past their probes:
/item.php?id= and POST /login put their input into SQLite queries (in memory),
and /ping?host= into a shell command line (`echo`, 3 s at most).

    site.py PORT [mysql:PORT | postgresql:PORT]

With a second argument the queries go to that server on 127.0.0.1 instead (MariaDB as
root, PostgreSQL as postgres, database `shop`, created; PyMySQL or psycopg2 needed), so
the SQL the tools make the site send can be captured on the wire too."""
import http.server, sqlite3, subprocess, sys, threading, urllib.parse

PORT = int(sys.argv[1])
INDEX = b"""<html><head><title>Shop</title></head><body>
<a href="/item.php?id=1">item</a> <a href="/search?q=shoes&cat=2">search</a>
<a href="/news/view.php?page=about.html">news</a> <a href="/profile?user=alice">profile</a>
<a href="/index.php?file=home.php">home</a> <a href="/ping?host=example.org">ping</a>
<form action="/login" method="POST"><input name="username"><input type="password" name="password"><input type="submit"></form>
<form action="/comment" method="POST"><input name="name"><textarea name="text"></textarea><input type="submit"></form>
<form action="/find" method="GET"><input name="q"><input name="sort" value="asc"><input type="submit"></form>
</body></html>"""

SCHEMA = ["CREATE TABLE items(id INTEGER, name VARCHAR(40), price REAL)",
          "INSERT INTO items VALUES (1,'shoes',40.0),(2,'hat',15.5),(3,'coat',120.0)",
          "CREATE TABLE users(username VARCHAR(40), password VARCHAR(40), card VARCHAR(20))",
          "INSERT INTO users VALUES ('alice','s3cret','4111111111111111'),('bob','hunter2','5500000000000004')"]
LOCK = threading.Lock()

def connect():
    """A connection with the shop's tables, and the name the error pages give its server."""
    if len(sys.argv) < 3:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        for q in SCHEMA:
            db.execute(q)
        return db, "SQLite"
    kind, port = sys.argv[2].split(":")
    if kind == "mysql":
        import pymysql
        admin = pymysql.connect(host="127.0.0.1", port=int(port), user="root", autocommit=True)
        admin.cursor().execute("DROP DATABASE IF EXISTS shop")
        admin.cursor().execute("CREATE DATABASE shop")
        db = pymysql.connect(host="127.0.0.1", port=int(port), user="root", database="shop",
                             autocommit=True)
        name = "MySQL"
    else:
        import psycopg2
        admin = psycopg2.connect(host="127.0.0.1", port=int(port), user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute("DROP DATABASE IF EXISTS shop")
        admin.cursor().execute("CREATE DATABASE shop")
        db = psycopg2.connect(host="127.0.0.1", port=int(port), user="postgres", dbname="shop")
        db.autocommit = True
        name = "PostgreSQL"
    for q in SCHEMA:
        db.cursor().execute(q)
    return db, name

DB, DBMS = connect()

def query(sql):
    """Runs the query as written (the page is vulnerable on purpose) and shows rows or the error."""
    try:
        with LOCK:
            cur = DB.cursor()
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else []
        return ("<br>".join(" ".join(str(c) for c in r) for r in rows) or "no rows").encode("latin-1", "replace")
    except Exception as e:
        return (DBMS + " error: " + str(e)).encode("latin-1", "replace")

def shell(host):
    try:
        out = subprocess.run(["sh", "-c", "echo checking " + host], capture_output=True, timeout=3).stdout
    except subprocess.TimeoutExpired:
        out = b"timeout"
    return out

def dynamic(path, form):
    """The vulnerable pages' answers, or None."""
    url = urllib.parse.urlsplit(path)
    args = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    args.update(form)
    if url.path == "/item.php" and "id" in args:
        return query("SELECT name, price FROM items WHERE id=" + args["id"])
    if url.path == "/login" and "username" in args:
        return query("SELECT username FROM users WHERE username='%s' AND password='%s'"
                     % (args["username"], args.get("password", "")))
    if url.path == "/ping" and "host" in args:
        return shell(args["host"])
    return None

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self, body):
        page = INDEX if self.path in ("/", "/index.html") else (
            b"<html><body>You asked for: " + body + b"<br>" + INDEX + b"</body></html>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page)
    def do_GET(self):
        self.answer(dynamic(self.path, {}) or urllib.parse.unquote(self.path).encode("latin-1", "replace"))
    do_HEAD = do_GET
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        form = dict(urllib.parse.parse_qsl(data.decode("latin-1"), keep_blank_values=True))
        self.answer(dynamic(self.path, form)
                    or urllib.parse.unquote_plus(data.decode("latin-1")).encode("latin-1", "replace"))
    do_PUT = do_OPTIONS = do_DELETE = do_PATCH = do_POST
    def do_TRACE(self): self.answer(b"")

http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
