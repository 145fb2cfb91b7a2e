#!/usr/bin/env python3
"""Sends hand-made ipOS frames from a raw socket: one kind per argument.

usage: ipos_frames.py IFACE DST_MAC COUNT [--src MAC] KIND [KIND ...]
KIND: truncated, bad_checksum, unknown_type, unknown_protocol, bad_inner, bad_length,
      unexpected_ack (a valid acknowledgement, but from a MAC that is not a farm node's)
--src: the source MAC of every kind but unexpected_ack (which uses the interface's own), e.g. a
farm node's, so that the frames reach the node's parser.
Addresses are 198.18.0.0/15 only. The checksum is the Internet checksum of the 16-byte ipOS
header (checksum field zero) followed by the connection information for connection frames.
"""
import socket
import struct
import sys

ETHERTYPE = 0x0007
CLIENT = bytes([198, 18, 0, 1])
VIP = bytes([198, 18, 0, 100])


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def header(typ: int, proto: int, body_for_sum: bytes = b"", bad_sum: bool = False) -> bytes:
    h = CLIENT + struct.pack("!H", 40000) + VIP + struct.pack("!H", 80) + bytes([typ, proto]) + b"\0\0"
    c = csum(h + body_for_sum)
    if bad_sum:
        c ^= 0x5A5A
    return h[:14] + struct.pack("!H", c)


def frames(kind: str) -> bytes:
    if kind == "truncated":
        return b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"
    if kind == "bad_checksum":
        return header(0x03, 0x01, bad_sum=True)
    if kind == "unknown_type":
        return header(0x09, 0x01)
    if kind == "unknown_protocol":
        return header(0x03, 0x07)
    if kind == "bad_inner":
        inner = bytes([0x60]) + bytes(39)  # IPv6 version nibble: not an IPv4 packet
        return header(0x02, 0x01) + inner
    if kind == "bad_length":
        # A TCP connection frame cut inside its 146-byte connection information.
        info = bytes([198, 18, 0, 12]) + struct.pack("!H", 80) + bytes(60)
        return header(0x01, 0x01, info) + info
    if kind == "unexpected_ack":
        return header(0x03, 0x01)
    raise SystemExit("unknown kind " + kind)


def main() -> None:
    iface, dst, count = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3])
    kinds = sys.argv[4:]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    own = s.getsockname()[4][:6]
    forged = own
    if kinds[:1] == ["--src"]:
        forged = bytes.fromhex(kinds[1].replace(":", ""))
        kinds = kinds[2:]
    sent = 0
    for kind in kinds:
        body = frames(kind)
        src = own if kind == "unexpected_ack" else forged
        for _ in range(count):
            s.send(dst + src + struct.pack("!H", ETHERTYPE) + body)
            sent += 1
    print("sent", sent)


if __name__ == "__main__":
    main()
