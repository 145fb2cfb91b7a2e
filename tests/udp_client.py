#!/usr/bin/env python3
"""UDP echo client for the ipos end-to-end tests.

    udp_client.py HOST PORT FLOWS DATAGRAMS TIMEOUT_S

Opens FLOWS sockets (one client port each) and sends DATAGRAMS numbered datagrams on each, one at a
time, waiting for each echo (resending after 200 ms, at most 20 times). Every echo must come from
HOST:PORT and carry exactly the bytes sent. Prints `ok=K failed=F resends=R` and exits 0 only if
every datagram of every flow was echoed. Bounded by TIMEOUT_S.
"""
import socket
import sys
import time


def main() -> None:
    host, port, flows, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    deadline = time.monotonic() + timeout
    ok = failed = resends = 0
    socks = []
    for _ in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("198.18.0.1", 0))
        s.settimeout(0.2)
        socks.append(s)
    for i in range(count):
        for f, s in enumerate(socks):
            msg = f"ipos flow {f} datagram {i} ".encode() + bytes(range(64))
            got = False
            for _attempt in range(20):
                if time.monotonic() > deadline:
                    break
                s.sendto(msg, (host, port))
                try:
                    while True:
                        data, addr = s.recvfrom(2048)
                        if addr == (host, port) and data == msg:
                            got = True
                            break
                except socket.timeout:
                    resends += 1
                    continue
                if got:
                    break
            if got:
                ok += 1
            else:
                failed += 1
    print(f"ok={ok} failed={failed} resends={resends}")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
