#!/usr/bin/env python3
"""Concurrent raw-socket HTTP/1.1 client for the ipos end-to-end tests.

    http_client.py HOST PORT N_CONNS BODY_BYTES TIMEOUT_S [EXPECT_NODE]

Opens N_CONNS TCP connections to HOST:PORT, waits until every one is
established (so that all of them are open at the same time), then sends
`GET /bytes/BODY_BYTES HTTP/1.1` on each and reads the whole response. Every
response must be `200`, carry `Content-Length: BODY_BYTES` and an
`X-Ipos-Node` header (equal to EXPECT_NODE when given), and its body must be
the `/bytes/N` pattern (byte i == i mod 251), with no byte more before the
server closes or the deadline. Prints one summary line
`ok=K failed=F bytes=B secs=S nodes={...}` followed by up to 10 error lines;
exits 0 only if every connection succeeded. Everything is bounded by TIMEOUT_S.
"""

import asyncio
import sys
import time

PERIOD = 251


def pattern(n):
    reps = n // PERIOD + 1
    return (bytes(range(PERIOD)) * reps)[:n]


async def one(idx, host, port, n, expected, ready, go, deadline, expect_node):
    """Returns (ok, node, body_len, error)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), timeout=max(0.1, deadline - time.monotonic())
        )
    except Exception as e:  # noqa: BLE001
        ready.append(idx)
        return (False, None, 0, f"conn {idx}: connect: {e!r}")
    ready.append(idx)
    try:
        await go.wait()
        req = f"GET /bytes/{n} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ipos-tests\r\n\r\n"
        writer.write(req.encode())
        await writer.drain()
        left = lambda: max(0.1, deadline - time.monotonic())  # noqa: E731
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=left())
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if not status.startswith("HTTP/1.1 200"):
            return (False, None, 0, f"conn {idx}: status {status!r}")
        clen = headers.get("content-length")
        if clen != str(n):
            return (False, None, 0, f"conn {idx}: Content-Length {clen!r}, want {n}")
        node = headers.get("x-ipos-node")
        if node is None:
            return (False, None, 0, f"conn {idx}: no X-Ipos-Node header: {headers}")
        if expect_node and node != expect_node:
            return (False, node, 0, f"conn {idx}: X-Ipos-Node {node!r}, want {expect_node!r}")
        body = await asyncio.wait_for(reader.readexactly(n), timeout=left())
        if body != expected:
            first = next(i for i in range(n) if body[i] != expected[i])
            return (
                False,
                node,
                len(body),
                f"conn {idx}: body differs first at byte {first}: "
                f"got {body[first]}, want {expected[first]}",
            )
        # Nothing may follow the body. The server may keep the connection
        # open (HTTP/1.1): a short wait that ends in EOF or a timeout is fine.
        try:
            extra = await asyncio.wait_for(reader.read(1), timeout=0.2)
            if extra:
                return (False, node, len(body), f"conn {idx}: bytes after the body: {extra!r}")
        except asyncio.TimeoutError:
            pass
        return (True, node, len(body), None)
    except asyncio.IncompleteReadError as e:
        return (False, None, len(e.partial), f"conn {idx}: EOF after {len(e.partial)} bytes")
    except asyncio.TimeoutError:
        return (False, None, 0, f"conn {idx}: timed out")
    except Exception as e:  # noqa: BLE001
        return (False, None, 0, f"conn {idx}: {e!r}")
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout=1)
        except Exception:  # noqa: BLE001
            pass


async def main():
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    conns, n, timeout = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    expect_node = sys.argv[6] if len(sys.argv) > 6 else None
    expected = pattern(n)
    start = time.monotonic()
    deadline = start + timeout
    ready, go = [], asyncio.Event()
    tasks = [
        asyncio.create_task(one(i, host, port, n, expected, ready, go, deadline, expect_node))
        for i in range(conns)
    ]
    # Every connection is established (or failed) before any request goes out.
    while len(ready) < conns and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    connected_at = time.monotonic() - start
    go.set()
    results = await asyncio.gather(*tasks)
    secs = time.monotonic() - start
    ok = sum(1 for r in results if r[0])
    total = sum(r[2] for r in results)
    nodes = {}
    for r in results:
        if r[1] is not None:
            nodes[r[1]] = nodes.get(r[1], 0) + 1
    errors = [r[3] for r in results if r[3]]
    print(
        f"ok={ok} failed={conns - ok} bytes={total} secs={secs:.2f} "
        f"connect_secs={connected_at:.2f} nodes={nodes}"
    )
    for e in errors[:10]:
        print(e)
    return 0 if ok == conns else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
