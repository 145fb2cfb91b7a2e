#!/usr/bin/env python3
"""One keep-alive HTTP/1.1 connection, reused after an idle pause.

    keepalive_client.py HOST PORT IDLE_S PATH1 N1 PATH2 N2

Connects once, sends `GET PATH1` (a `/bytes/N1` route) and reads the whole
response, stays idle IDLE_S seconds, then sends `GET PATH2` (`/bytes/N2`) on
the same socket and reads that response. Both must be 200 with the right
Content-Length and the /bytes pattern (byte i == i mod 251); the server must
not close the connection in between. Prints `ok node1=X node2=Y` and exits 0,
or prints the error and exits 1. Every wait is bounded.
"""

import socket
import sys
import time

PERIOD = 251


def read_response(sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed before the head ({len(buf)} bytes)")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "-1"))
    while len(body) < length:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed after {len(body)} of {length} body bytes")
        body += chunk
    return status, headers, body


def check(status, headers, body, n):
    if status != 200:
        raise RuntimeError(f"status {status}")
    if len(body) != n:
        raise RuntimeError(f"body {len(body)} bytes, expected {n}")
    want = (bytes(range(PERIOD)) * (n // PERIOD + 1))[:n]
    if body != want:
        i = next(i for i in range(n) if body[i] != want[i])
        raise RuntimeError(f"body byte {i} differs")
    return headers.get("x-ipos-node", "?")


def main():
    host, port, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    path1, n1, path2, n2 = sys.argv[4], int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
    sock = socket.create_connection((host, port), timeout=10)
    try:
        req = f"GET {path1} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        sock.sendall(req)
        node1 = check(*read_response(sock, time.monotonic() + 20), n1)
        time.sleep(idle)
        sock.sendall(f"GET {path2} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        node2 = check(*read_response(sock, time.monotonic() + 20), n2)
    except Exception as e:  # noqa: BLE001
        print(f"error: {e!r}")
        return 1
    finally:
        sock.close()
    print(f"ok node1={node1} node2={node2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
