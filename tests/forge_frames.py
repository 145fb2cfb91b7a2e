#!/usr/bin/env python3
"""Forges farm frames from a raw socket, as any host on the farm's segment could: a farm node's
MAC as the source, well-formed ipOS frames (right checksums), and an authentication trailer
whose tag is made up (no farm key). A farm with a key must drop each as auth_bad_tag.

usage: forge_frames.py IFACE A_MAC B_MAC C_MAC CLIENT_PORT
Sends to the Ethernet broadcast address (so every node receives each one), for the client
connection 198.18.0.1:CLIENT_PORT -> 198.18.0.100:80:
  to b from a's MAC: a TCP connection packet (a TCB of our choosing) and a commit;
  to b from a's MAC: an abort notice ("I kept it, forget your copy");
  to a from b's MAC: a move notice ("it lives at c now");
  to everyone from c's MAC: a server-state advert with a huge sequence number.
Addresses are 198.18.0.0/15 only.
"""
import os
import socket
import struct
import sys
import time

ETHERTYPE = 0x0007
CLIENT = bytes([198, 18, 0, 1])
VIP = bytes([198, 18, 0, 100])
NODE = {"a": bytes([198, 18, 0, 11]), "b": bytes([198, 18, 0, 12]), "c": bytes([198, 18, 0, 13])}


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipos(src_ip, sport, dst_ip, dport, typ, proto, covered: bytes) -> bytes:
    h = src_ip + struct.pack("!H", sport) + dst_ip + struct.pack("!H", dport) + bytes([typ, proto]) + b"\0\0"
    return h[:14] + struct.pack("!H", csum(h + covered))


def trailer() -> bytes:
    # mode 0x01 (authenticated), key id 0, reserved, an epoch in the future (so it is not
    # refused as a replay before its tag is checked), sequence 1, a made-up tag.
    epoch = int(time.time() * 1e6) * 2
    return bytes([0x01, 0, 0, 0]) + struct.pack("!QQ", epoch, 1) + os.urandom(16)


def tcb() -> bytes:
    # Version 1, ESTABLISHED, then a window, an MSS and a client MAC of the forger's choosing.
    t = bytearray(140)
    t[0], t[1] = 1, 4
    return bytes(t)


def main() -> None:
    iface = sys.argv[1]
    mac = {k: bytes.fromhex(v.replace(":", "")) for k, v in zip("abc", sys.argv[2:5])}
    cport = int(sys.argv[5])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    flow = (CLIENT, cport, VIP, 80)
    frames = []
    info = NODE["b"] + struct.pack("!H", 80) + tcb()
    frames.append((mac["b"], mac["a"], ipos(*flow, 0x01, 0x01, info) + info))
    frames.append((mac["b"], mac["a"], ipos(*flow, 0x03, 0x01, b"")))
    abort = NODE["a"] + struct.pack("!H", 80)
    frames.append((mac["b"], mac["a"], ipos(*flow, 0x11, 0x01, abort) + abort))
    move = NODE["c"] + struct.pack("!H", 80)
    frames.append((mac["a"], mac["b"], ipos(*flow, 0x11, 0x01, move) + move))
    # Advert: version 1, no listening or application entries, node c, sequence 2^31 - 1,
    # no connections, no CPU use, plenty of memory and bandwidth (the policy's favourite).
    advert = bytes([1, 0, 0, 0]) + NODE["c"] + struct.pack("!IIHHII", 0x7FFFFFFF, 0, 0, 0, 65535, 10000)
    frames.append((b"\xff" * 6, mac["c"], ipos(NODE["c"], 0, b"\xff" * 4, 0, 0x10, 0x01, advert) + advert))
    for _, src, body in frames:
        # Broadcast: the bridge floods it to every node whatever it has learnt (a forged source
        # MAC makes it place that node on our port for a moment, and a unicast frame to that
        # node would then be dropped by the bridge before any node saw it).
        s.send(b"\xff" * 6 + src + struct.pack("!H", ETHERTYPE) + body + trailer())
        # The bridge now places the forged MAC on our port, and would drop a frame to that node
        # sent from here; the node's own next frame moves it back. Give it time to send one.
        time.sleep(0.2)
    print("sent", len(frames))


if __name__ == "__main__":
    main()
