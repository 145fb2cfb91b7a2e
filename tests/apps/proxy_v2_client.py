#!/usr/bin/env python3
"""Sends HTTP/1.1 requests on one connection that begins with a PROXY protocol v2 header.

    proxy_v2_client.py --connect IP:PORT [--src IP:PORT] [--dst IP:PORT] [--no-proxy]
                       [--path P]... [--method M] [--body-size N | --body-file F] [--chunked]
                       [--bad-signature]

As iposd does towards its upstream: a v2 header (PROXY, TCP over IPv4, --src as the client,
default 198.18.0.1:40000), then one request per --path, all on the same keep-alive connection.
A body (POST/PUT) is --body-size N pseudo-random bytes or --body-file F, sent with
Content-Length or, with --chunked, in 64 KiB chunks. For each response, one line:

    STATUS LENGTH SHA256 node=X-App-Node client=X-Client-Addr server=Server upload=X-Upload-...

and the body itself when it is short text. Exit status 1 when a response is missing or cut.
Python 3 standard library only.
"""

import argparse
import hashlib
import ipaddress
import os
import socket
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def addr(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def proxy_v2(src, dst, bad=False):
    body = (ipaddress.IPv4Address(src[0]).packed + ipaddress.IPv4Address(dst[0]).packed
            + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big"))
    sig = SIG if not bad else b"\r\n\r\n\x00\r\nQUIZ\n"
    return sig + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self.more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self.more()
            piece, self.buf = self.buf[:n], self.buf[n:]
            sink(piece)
            n -= len(piece)

    def response(self, method):
        while True:
            status = self.line()
            headers = {}
            while True:
                h = self.line()
                if not h:
                    break
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            code = int(status.split(" ")[1])
            if code != 100:
                break
        h = hashlib.sha256()
        short = []
        got = [0]

        def sink(p):
            h.update(p)
            got[0] += len(p)
            if got[0] <= 256:
                short.append(p)

        if method != "HEAD":
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    n = int(self.line().split(";")[0], 16)
                    if n == 0:
                        while self.line():
                            pass
                        break
                    self.exact(n, sink)
                    self.line()
            elif "content-length" in headers:
                self.exact(int(headers["content-length"]), sink)
            else:
                try:
                    while True:
                        self.more()
                        sink(self.buf)
                        self.buf = b""
                except EOFError:
                    pass
        return code, headers, got[0], h.hexdigest(), b"".join(short)


def body_pieces(args):
    if args.body_file:
        with open(args.body_file, "rb") as f:
            while True:
                p = f.read(65536)
                if not p:
                    return
                yield p
    elif args.body_size is not None:
        left = args.body_size
        block = os.urandom(65536)
        while left > 0:
            p = block[:min(left, len(block))]
            left -= len(p)
            block = hashlib.sha256(block[:32]).digest() * 2048  # changes each piece, cheaply
            yield p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", required=True, type=addr)
    ap.add_argument("--src", default="198.18.0.1:40000", type=addr)
    ap.add_argument("--dst", default="198.18.0.100:80", type=addr)
    ap.add_argument("--no-proxy", action="store_true", help="no PROXY header")
    ap.add_argument("--bad-signature", action="store_true", help="a v2 header with a bad signature")
    ap.add_argument("--path", action="append", help="a request per --path (default /)")
    ap.add_argument("--method", default=None, help="default GET, POST with a body")
    ap.add_argument("--host", default="ipos")
    ap.add_argument("--body-size", type=int)
    ap.add_argument("--body-file")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    has_body = args.body_file is not None or args.body_size is not None
    method = args.method or ("POST" if has_body else "GET")
    paths = args.path or ["/"]

    sock = socket.create_connection(args.connect, timeout=args.timeout)
    conn = Conn(sock)
    if not args.no_proxy:
        sock.sendall(proxy_v2(args.src, args.dst, args.bad_signature))
    ok = True
    for i, path in enumerate(paths):
        last = i == len(paths) - 1
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: proxy_v2_client\r\n" % (
            method, path, args.host)
        if last:
            head += "Connection: close\r\n"
        sent = hashlib.sha256()
        n = 0
        if has_body:
            if args.chunked:
                sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
                for p in body_pieces(args):
                    sent.update(p)
                    n += len(p)
                    sock.sendall(b"%x\r\n" % len(p) + p + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                size = os.path.getsize(args.body_file) if args.body_file else args.body_size
                sock.sendall((head + "Content-Length: %d\r\n\r\n" % size).encode())
                for p in body_pieces(args):
                    sent.update(p)
                    n += len(p)
                    sock.sendall(p)
        else:
            sock.sendall((head + "\r\n").encode())
        try:
            code, headers, length, digest, short = conn.response(method)
        except (EOFError, OSError) as e:
            print("no response to %s %s: %s" % (method, path, e))
            ok = False
            break
        extra = ""
        if has_body:
            extra = " sent=%d %s" % (n, sent.hexdigest())
        print("%d %d %s node=%s client=%s server=%s upload=%s/%s%s" % (
            code, length, digest, headers.get("x-app-node", "-"),
            headers.get("x-client-addr", "-"), headers.get("server", "-"),
            headers.get("x-upload-length", "-"), headers.get("x-upload-sha256", "-"), extra))
        if short and length <= 256 and all(32 <= c < 127 or c in (9, 10) for c in short):
            sys.stdout.write("  body: " + short.decode())
            if not short.endswith(b"\n"):
                print()
        sys.stdout.flush()
    sock.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
