#!/usr/bin/env python3
"""The test site for held-out attack traffic (run.sh): 127.0.0.1 only.
Pages link to query parameters and hold GET and POST forms, and reflect input
(unescaped), so the XSS, SQL injection and fuzzing scripts find places to inject."""
import http.server, sys, urllib.parse, html

PORT = int(sys.argv[1])
INDEX = b"""<html><head><title>Shop</title></head><body>
<a href="/item.php?id=1">item</a> <a href="/search?q=shoes&cat=2">search</a>
<a href="/news/view.php?page=about.html">news</a> <a href="/profile?user=alice">profile</a>
<a href="/index.php?file=home.php">home</a>
<form action="/login" method="POST"><input name="username"><input type="password" name="password"><input type="submit"></form>
<form action="/comment" method="POST"><input name="name"><textarea name="text"></textarea><input type="submit"></form>
<form action="/find" method="GET"><input name="q"><input name="sort" value="asc"><input type="submit"></form>
</body></html>"""

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
        self.answer(urllib.parse.unquote(self.path).encode("latin-1", "replace"))
    do_HEAD = do_GET
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        self.answer(urllib.parse.unquote_plus(data.decode("latin-1")).encode("latin-1", "replace"))
    do_PUT = do_OPTIONS = do_DELETE = do_PATCH = do_POST
    def do_TRACE(self): self.answer(b"")

http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
