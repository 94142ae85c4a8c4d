#!/usr/bin/python3
"""nginx_upstream.py - the fake ACS upstream for tests/integration/nginx.sh.

A TLS server on 127.0.0.1 that answers for every test name (its
certificate, signed by the test's own CA, lists them) and echoes each
request as JSON: {"method", "path", "host", "body"} - so the test sees
exactly what nginx forwarded (request line, Host, body).  Every request
line is also appended to LOG, to show that no token ever reached it.
With --ws-port it also serves WebSocket echo (python3-websockets) on a
second port: each text message comes back as "echo:<message>".

Two paths answer otherwise (any path ending in them, so that a host rule
with a path prefix can reach them too; HEAD gets the headers only):
  .../redirect?code=302&to=<urlencoded Location>[&size=N]
      that status with that Location, ETag, Last-Modified,
      Content-Encoding and Set-Cookie, and a text body of N bytes
      (default 40) that must never reach a client the redirect is refused to
  .../cors-star
      the echo, with "Access-Control-Allow-Origin: *" and
      "Access-Control-Allow-Credentials: true" (the proxy must strip them)

usage: nginx_upstream.py PORT CERT KEY LOG [--ws-port PORT2]
Prints "ready" on stdout once listening.
"""

import asyncio
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_path = None

    def log_message(self, fmt, *args):
        pass

    def _echo(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        # the request line's target as sent (http.server folds a leading
        # "//" in self.path)
        path = self.raw_requestline.split()[1].decode("latin-1")
        with open(self.log_path, "a") as f:
            f.write("%s %s host=%s\n" % (self.command, path,
                                         self.headers.get("Host")))
        url = urlsplit(path)
        if url.path.endswith("/redirect"):
            return self._redirect(parse_qs(url.query))
        out = json.dumps({"method": self.command, "path": path,
                          "host": self.headers.get("Host"),
                          "body": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if url.path.endswith("/cors-star"):
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Credentials", "true")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    def _redirect(self, q):
        size = int(q.get("size", ["40"])[0])
        out = (b"upstream redirect body " * (size // 23 + 1))[:size]
        self.send_response(int(q.get("code", ["302"])[0]))
        self.send_header("Location", q.get("to", ["/"])[0])
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("ETag", '"upstream-etag"')
        self.send_header("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
        self.send_header("Content-Encoding", "identity")
        self.send_header("Set-Cookie", "upstream=1; Path=/")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _echo


def ws_serve(port, ctx, log_path):
    import websockets

    async def echo(ws, path=None):
        with open(log_path, "a") as f:
            f.write("WS %s\n" % (path or getattr(ws, "path", "?")))
        async for msg in ws:
            await ws.send("echo:" + msg)

    async def main():
        async with websockets.serve(echo, "127.0.0.1", port, ssl=ctx):
            await asyncio.Future()

    asyncio.run(main())


def main():
    port, cert, key, log_path = sys.argv[1:5]
    ws_port = None
    if len(sys.argv) > 6 and sys.argv[5] == "--ws-port":
        ws_port = int(sys.argv[6])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    Echo.log_path = log_path
    httpd = ThreadingHTTPServer(("127.0.0.1", int(port)), Echo)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    if ws_port:
        t = threading.Thread(target=ws_serve, args=(ws_port, ctx, log_path),
                             daemon=True)
        t.start()
    print("ready", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
