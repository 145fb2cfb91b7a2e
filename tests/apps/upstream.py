#!/usr/bin/env python3
"""A small threaded HTTP/1.1 server: the local upstream an iposd node relays a service port to.

    upstream.py --listen 198.18.1.11:8080 --node a [--files DIR] [--log FILE] [--idle-timeout S]

Each connection may begin with a PROXY protocol header: version 2 (binary, what iposd sends) or
version 1 (text, what `curl --haproxy-protocol` sends). The client address in it is the one
reported (X-Client-Addr, log); without a header, the socket's peer is. Keep-alive HTTP/1.1 (and
HTTP/1.0 with Connection: keep-alive), Content-Length and chunked request bodies, Expect:
100-continue. Routes (a one-segment prefix /a/ .. /h/ is dropped first: /b/upload is /upload):

    GET  /              200, "python on node NAME\\n"
    GET  /files/NAME    the file NAME of --files DIR, streamed in 64 KiB pieces
    GET  /bytes/N       N bytes, byte i is i % 251, streamed
    GET  /slow/MS       200, "slow MS\n" after MS milliseconds (at most 60000): a request
                        still in flight when the test stops the application
    POST|PUT /upload    reads the body as it comes (SHA-256 on the fly): 200 with
                        X-Upload-Length, X-Upload-Sha256 and the body "N HEX\\n"
    anything else       404 (405 for a known path with another method)

Every response has Server: ipos-test-upstream, X-App-Node, X-Client-Addr and Content-Length.
One log line per request: "CLIENT_IP:PORT METHOD PATH STATUS BYTES" (BYTES: body bytes sent).
Python 3 standard library only; one daemon thread per connection; exits on SIGTERM or SIGINT.
"""

import argparse
import email.utils
import hashlib
import ipaddress
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

PIECE = 64 * 1024
PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PREFIX = re.compile(r"^/[a-h]/(.*)$")
# byte i of /bytes/N is i % 251: any 64 KiB piece is a slice of this block at (offset % 251).
PATTERN = bytes(i % 251 for i in range(251 * 263))
MAX_LINE = 8192
MAX_HEADERS = 100

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


class BadRequest(Exception):
    """The request cannot be parsed: answered with STATUS, then the connection closes."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


class Closed(Exception):
    """The peer closed the connection (or it broke) where a request or its body was due."""


class Reader:
    """Buffered reads from a socket, without ever consuming more than asked for."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _recv(self):
        try:
            data = self.sock.recv(PIECE)
        except (ConnectionError, socket.timeout, OSError) as e:
            raise Closed(str(e)) from e
        if not data:
            raise Closed("end of stream")
        return data

    def fill(self, n):
        """Makes the buffer hold at least n bytes (Closed at EOF)."""
        while len(self.buf) < n:
            self.buf += self._recv()

    def at_eof_before_data(self):
        """True when the peer closes before sending a byte (a probe), else fills >= 1 byte."""
        if self.buf:
            return False
        try:
            self.fill(1)
        except Closed:
            return True
        return False

    def read_exact(self, n):
        self.fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n):
        """Up to n (> 0) bytes, at least one: what the buffer holds, or one recv."""
        if self.buf:
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out
        data = self._recv()
        if len(data) > n:
            self.buf += data[n:]
            data = data[:n]
        return data

    def readline(self, limit=MAX_LINE):
        """One line with its CRLF (or LF); BadRequest(431) past limit bytes."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                return self.read_exact(i + 1)
            if len(self.buf) > limit:
                raise BadRequest(431, "line too long")
            start = len(self.buf)
            self.buf += self._recv()


def parse_proxy_v2(reader, peer):
    """The PROXY v2 header (its 16 bytes, then exactly its length): the client (ip, port)."""
    head = reader.read_exact(16)
    if head[:12] != PROXY_V2_SIG:
        raise BadRequest(400, "bad PROXY v2 signature")
    ver_cmd, fam = head[12], head[13]
    length = int.from_bytes(head[14:16], "big")
    body = reader.read_exact(length)
    if ver_cmd >> 4 != 2 or ver_cmd & 0xF not in (0, 1):
        raise BadRequest(400, "bad PROXY v2 version/command 0x%02x" % ver_cmd)
    if ver_cmd & 0xF == 0:  # LOCAL: the connection is the proxy's own, the peer is the client
        return peer
    if fam in (0x11, 0x12):  # TCP or UDP over IPv4: src 4, dst 4, sport 2, dport 2, TLVs
        if length < 12:
            raise BadRequest(400, "PROXY v2 IPv4 addresses cut short")
        return str(ipaddress.IPv4Address(body[0:4])), int.from_bytes(body[8:10], "big")
    if fam in (0x21, 0x22):  # over IPv6: src 16, dst 16, sport 2, dport 2, TLVs
        if length < 36:
            raise BadRequest(400, "PROXY v2 IPv6 addresses cut short")
        return str(ipaddress.IPv6Address(body[0:16])), int.from_bytes(body[32:34], "big")
    return peer  # UNSPEC or unix: no address to report


def parse_proxy_v1(reader, peer):
    """The PROXY v1 text line ("PROXY TCP4 SRC DST SPORT DPORT\\r\\n"): the client (ip, port)."""
    line = reader.readline(107).decode("latin-1").rstrip("\r\n")
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return peer
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise BadRequest(400, "bad PROXY v1 line")
    try:
        ipaddress.ip_address(parts[2])
        return parts[2], int(parts[4])
    except ValueError as e:
        raise BadRequest(400, "bad PROXY v1 address") from e


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.settimeout(self.server.idle_timeout)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = Reader(self.request)
        self.client = self.client_address[:2]

    def handle(self):
        try:
            if self.reader.at_eof_before_data():
                return
            try:
                self.reader.fill(4)
            except Closed:
                return
            if bytes(self.reader.buf[:4]) == PROXY_V2_SIG[:4]:
                self.client = parse_proxy_v2(self.reader, self.client)
            elif bytes(self.reader.buf[:4]) == b"PROX":
                self.client = parse_proxy_v1(self.reader, self.client)
            while self.one_request():
                pass
        except BadRequest as e:
            self.error(e.status, "-", "-", str(e))
        except (Closed, ConnectionError, socket.timeout, OSError):
            pass

    # --- one request -------------------------------------------------------------------------

    def one_request(self):
        """Serves one request; False when the connection is to close."""
        if self.reader.at_eof_before_data():
            return False
        for _ in range(8):  # empty lines before a request line are ignored (RFC 9112 2.2)
            line = self.reader.readline()
            if line.strip():
                break
        else:
            raise BadRequest(400, "no request line")
        parts = line.decode("latin-1").strip().split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise BadRequest(400, "bad request line")
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise BadRequest(505, "version " + version)
        headers = self.read_headers()
        conn_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if version == "HTTP/1.1":
            keep = "close" not in conn_tokens
        else:
            keep = "keep-alive" in conn_tokens
        body = self.body_reader(headers, method, target)
        if body is not None and headers.get("expect", "").lower() == "100-continue" \
                and version == "HTTP/1.1":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        path = urllib.parse.unquote(target.split("?", 1)[0])
        m = PREFIX.match(path)
        if m:
            path = "/" + m.group(1)
        self.version, self.keep = version, keep
        try:
            return self.route(method, target, path, body)
        finally:
            self.version = self.keep = None

    def read_headers(self):
        headers = {}
        total = 0
        for _ in range(MAX_HEADERS + 1):
            line = self.reader.readline()
            total += len(line)
            if total > 65536:
                raise BadRequest(431, "headers too long")
            if line in (b"\r\n", b"\n"):
                return headers
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(400, "bad header line")
            name, value = name.lower(), value.strip()
            if name in headers:
                if name == "content-length" and headers[name] != value:
                    raise BadRequest(400, "conflicting Content-Length")
                headers[name] = headers[name] + ", " + value
            else:
                headers[name] = value
        raise BadRequest(431, "too many headers")

    def body_reader(self, headers, method, target):
        """A generator of the request body's pieces, or None when it has none."""
        te = headers.get("transfer-encoding")
        if te is not None:
            codings = [c.strip().lower() for c in te.split(",")]
            if codings[-1] != "chunked":
                raise BadRequest(400, "Transfer-Encoding without chunked last")
            if codings != ["chunked"]:
                raise BadRequest(501, "Transfer-Encoding " + te)
            return self.chunked_body()
        cl = headers.get("content-length")
        if cl is not None:
            cl = cl.split(",")[0].strip()
            if not cl.isdigit() or len(cl) > 18:
                raise BadRequest(400, "bad Content-Length")
            n = int(cl)
            return self.length_body(n) if n > 0 else None
        return None

    def length_body(self, n):
        while n > 0:
            piece = self.reader.read_some(min(n, PIECE))
            n -= len(piece)
            yield piece

    def chunked_body(self):
        while True:
            line = self.reader.readline(1024).decode("latin-1")
            size = line.split(";", 1)[0].strip()
            if not size or len(size) > 15 or any(c not in "0123456789abcdefABCDEF" for c in size):
                raise BadRequest(400, "bad chunk size")
            n = int(size, 16)
            if n == 0:
                break
            while n > 0:
                piece = self.reader.read_some(min(n, PIECE))
                n -= len(piece)
                yield piece
            if self.reader.readline(2) not in (b"\r\n", b"\n"):
                raise BadRequest(400, "chunk without CRLF")
        for _ in range(MAX_HEADERS + 1):  # trailers
            if self.reader.readline() in (b"\r\n", b"\n"):
                return
        raise BadRequest(431, "too many trailers")

    # --- routes ------------------------------------------------------------------------------

    def route(self, method, target, path, body):
        get = method in ("GET", "HEAD")
        if path == "/upload":
            if method not in ("POST", "PUT"):
                return self.finish_with(body, method, target, 405, b"POST or PUT\n",
                                        extra={"Allow": "POST, PUT"})
            h = hashlib.sha256()
            n = 0
            if body is not None:
                for piece in body:
                    h.update(piece)
                    n += len(piece)
            hexd = h.hexdigest()
            return self.respond(method, target, 200, b"%d %s\n" % (n, hexd.encode()),
                                extra={"X-Upload-Length": str(n), "X-Upload-Sha256": hexd})
        if path == "/":
            if not get:
                return self.finish_with(body, method, target, 405, b"GET or HEAD\n",
                                        extra={"Allow": "GET, HEAD"})
            return self.finish_with(body, method, target, 200,
                                    b"python on node %s\n" % self.server.node.encode())
        if path.startswith("/files/"):
            name = path[len("/files/"):]
            d = self.server.files
            fpath = os.path.join(d, name) if d else None
            if not d or not name or "/" in name or name in (".", "..") or "\0" in name \
                    or not os.path.isfile(fpath):
                return self.finish_with(body, method, target, 404, b"not found\n")
            if not get:
                return self.finish_with(body, method, target, 405, b"GET or HEAD\n",
                                        extra={"Allow": "GET, HEAD"})
            self.drain(body)
            with open(fpath, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                return self.stream(method, target, size, lambda n: f.read(n),
                                   "application/octet-stream")
        m = re.fullmatch(r"/slow/([0-9]{1,5})", path)
        if m:
            if not get:
                return self.finish_with(body, method, target, 405, b"GET or HEAD\n",
                                        extra={"Allow": "GET, HEAD"})
            ms = min(int(m.group(1)), 60000)
            self.drain(body)
            time.sleep(ms / 1000.0)
            return self.respond(method, target, 200, b"slow %d\n" % ms)
        m = re.fullmatch(r"/bytes/([0-9]{1,15})", path)
        if m:
            if not get:
                return self.finish_with(body, method, target, 405, b"GET or HEAD\n",
                                        extra={"Allow": "GET, HEAD"})
            self.drain(body)
            size = int(m.group(1))
            pos = [0]

            def pattern(n):
                o = pos[0] % 251
                pos[0] += n
                return memoryview(PATTERN)[o:o + n]

            return self.stream(method, target, size, pattern, "application/octet-stream")
        return self.finish_with(body, method, target, 404, b"not found\n")

    # --- responses ---------------------------------------------------------------------------

    def drain(self, body):
        if body is not None:
            for _ in body:
                pass

    def finish_with(self, body, method, target, status, content, extra=None):
        self.drain(body)
        return self.respond(method, target, status, content, extra=extra)

    def head(self, status, length, ctype, extra=None):
        lines = [
            "%s %d %s" % (self.version or "HTTP/1.1", status, REASONS.get(status, "Unknown")),
            "Server: ipos-test-upstream",
            "Date: " + email.utils.formatdate(usegmt=True),
            "X-App-Node: " + self.server.node,
            "X-Client-Addr: %s:%d" % (self.client[0], self.client[1]),
            "Content-Type: " + ctype,
            "Content-Length: %d" % length,
        ]
        for k, v in (extra or {}).items():
            lines.append("%s: %s" % (k, v))
        if not self.keep:
            lines.append("Connection: close")
        elif self.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(self, method, target, status, content, extra=None):
        sent = 0
        try:
            if method == "HEAD":
                self.request.sendall(self.head(status, len(content), "text/plain", extra))
            else:
                self.request.sendall(self.head(status, len(content), "text/plain", extra) + content)
                sent = len(content)
        finally:
            self.server.log("%s:%d %s %s %d %d" % (self.client[0], self.client[1], method,
                                                     target, status, sent))
        return self.keep

    def stream(self, method, target, size, piece_of, ctype):
        sent = 0
        try:
            self.request.sendall(self.head(200, size, ctype))
            if method != "HEAD":
                while sent < size:
                    piece = piece_of(min(PIECE, size - sent))
                    if not piece:  # a file shrank under us: the response cannot be finished
                        self.keep = False
                        break
                    self.request.sendall(piece)
                    sent += len(piece)
        finally:
            self.server.log("%s:%d %s %s %d %d" % (self.client[0], self.client[1], method,
                                                     target, 200, sent))
        return self.keep

    def error(self, status, method, target, why):
        """A parse error: STATUS, Connection: close (best effort: the peer may be gone)."""
        self.version = getattr(self, "version", None) or "HTTP/1.1"
        self.keep = False
        content = ("%d %s: %s\n" % (status, REASONS.get(status, ""), why)).encode("latin-1")
        try:
            self.respond(method, target, status, content)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, addr, node, files, log_file, idle_timeout):
        self.node = node
        self.files = files
        self.idle_timeout = idle_timeout
        self.log_lock = threading.Lock()
        self.log_file = log_file
        super().__init__(addr, Handler)

    def log(self, line):
        with self.log_lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, metavar="IP:PORT")
    ap.add_argument("--node", required=True, help="the node's name, reported in every response")
    ap.add_argument("--files", metavar="DIR", help="the directory served under /files/")
    ap.add_argument("--log", metavar="FILE", help="request log (appended; default stderr)")
    ap.add_argument("--idle-timeout", type=float, default=120.0, metavar="SECS",
                    help="a connection silent this long is closed (default 120)")
    args = ap.parse_args()
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        ap.error("--listen takes IP:PORT")
    log_file = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr

    def stop(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = Server((host.strip("[]"), int(port)), args.node, args.files, log_file,
                    args.idle_timeout)
    print("upstream.py: node %s listening on %s" % (args.node, args.listen), file=sys.stderr,
          flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        print("upstream.py: node %s stopped" % args.node, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
