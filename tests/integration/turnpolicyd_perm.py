#!/usr/bin/python3
"""turnpolicyd_perm.py - a tiny TURN client for CreatePermission checks.

usage: turnpolicyd_perm.py [-6] PORT USER PASS PEER...

Talks UDP to the TURN server on 127.0.0.1:PORT only: Allocate (401 ->
REALM/NONCE -> authenticated Allocate with MESSAGE-INTEGRITY over the
long-term key MD5(user:realm:pass) and FINGERPRINT), then one
CreatePermission per PEER (XOR-PEER-ADDRESS; IPv4 or IPv6 family as the
address is written).  With -6 the Allocate asks for an IPv6 relayed
address (REQUESTED-ADDRESS-FAMILY 0x02, RFC 6156); the client still talks
to the server over IPv4 on 127.0.0.1.  No data is ever sent to a peer:
CreatePermission is a request to the TURN server alone.  Prints one line per request:
  allocate success|error CODE
  relayed ipv4|ipv6          (after a successful Allocate)
  PEER success|error CODE|timeout
Exit status 0 when the allocation succeeded, 1 otherwise.
"""
import binascii
import hashlib
import hmac
import ipaddress
import os
import socket
import struct
import sys

COOKIE = 0x2112A442
ALLOCATE, CREATE_PERMISSION, REFRESH = 0x003, 0x008, 0x004
A_USERNAME, A_MI, A_ERROR, A_REALM, A_NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
A_LIFETIME, A_XOR_PEER, A_TRANSPORT, A_FP = 0x000D, 0x0012, 0x0019, 0x8028
A_REQ_FAMILY = 0x0017  # REQUESTED-ADDRESS-FAMILY (RFC 6156)
A_XOR_RELAYED = 0x0016


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def build(method, attrs, key=None):
    tid = os.urandom(12)
    body = b"".join(attr(t, v) for t, v in attrs)
    if key is not None:
        hdr = struct.pack("!HHI", method, len(body) + 24, COOKIE) + tid
        mac = hmac.new(key, hdr + body, hashlib.sha1).digest()
        body += attr(A_MI, mac)
    hdr = struct.pack("!HHI", method, len(body) + 8, COOKIE) + tid
    crc = (binascii.crc32(hdr + body) & 0xFFFFFFFF) ^ 0x5354554E
    body += attr(A_FP, struct.pack("!I", crc))
    return tid, hdr + body


def parse(data):
    mtype, length, _cookie = struct.unpack("!HHI", data[:8])
    tid = data[8:20]
    attrs, off = {}, 20
    while off + 4 <= 20 + length:
        t, ln = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(t, data[off + 4:off + 4 + ln])
        off += 4 + ln + (4 - ln % 4) % 4
    return mtype, tid, attrs


def xor_peer(addr, tid, port=40000):
    ip = ipaddress.ip_address(addr)
    xport = port ^ (COOKIE >> 16)
    if ip.version == 4:
        x = int(ip) ^ COOKIE
        return struct.pack("!BBHI", 0, 1, xport, x)
    mask = int.from_bytes(struct.pack("!I", COOKIE) + tid, "big")
    x = int(ip) ^ mask
    return struct.pack("!BBH", 0, 2, xport) + x.to_bytes(16, "big")


def result(mtype, attrs):
    if mtype & 0x0110 == 0x0100:
        return "success"
    if mtype & 0x0110 == 0x0110:
        e = attrs.get(A_ERROR, b"\0\0\0\0")
        return "error %d" % ((e[2] & 7) * 100 + e[3])
    return "unexpected 0x%04x" % mtype


class Client:
    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1.0)
        self.server = ("127.0.0.1", port)

    def ask(self, tid, msg):
        for _ in range(3):
            self.sock.sendto(msg, self.server)
            try:
                while True:
                    data, _src = self.sock.recvfrom(4096)
                    mtype, rtid, attrs = parse(data)
                    if rtid == tid:
                        return mtype, attrs
            except socket.timeout:
                continue
        return None, {}


def main():
    args = sys.argv[1:]
    ipv6 = bool(args) and args[0] == "-6"
    if ipv6:
        args = args[1:]
    port, user, pw = int(args[0]), args[1], args[2]
    peers = args[3:]
    c = Client(port)
    transport = [(A_TRANSPORT, struct.pack("!B3x", 17))]
    if ipv6:
        transport.append((A_REQ_FAMILY, struct.pack("!B3x", 0x02)))
    tid, msg = build(ALLOCATE, transport)
    mtype, attrs = c.ask(tid, msg)
    if mtype is None or A_REALM not in attrs or A_NONCE not in attrs:
        print("allocate no-challenge", mtype and result(mtype, attrs))
        return 1
    realm, nonce = attrs[A_REALM], attrs[A_NONCE]
    key = hashlib.md5(user.encode() + b":" + realm + b":" + pw.encode()).digest()
    auth = [(A_USERNAME, user.encode()), (A_REALM, realm), (A_NONCE, nonce)]
    tid, msg = build(ALLOCATE, transport + auth, key)
    mtype, attrs = c.ask(tid, msg)
    res = "timeout" if mtype is None else result(mtype, attrs)
    print("allocate", res)
    sys.stdout.flush()
    if res != "success":
        return 1
    rel = attrs.get(A_XOR_RELAYED, b"")
    fam = {1: "ipv4", 2: "ipv6"}.get(rel[1] if len(rel) > 1 else 0, "none")
    print("relayed", fam)
    for p in peers:
        tid = os.urandom(12)
        # XOR-PEER-ADDRESS of an IPv6 address needs the transaction id.
        peer = xor_peer(p, tid)
        body = b"".join(attr(t, v) for t, v in [(A_XOR_PEER, peer)] + auth)
        hdr = struct.pack("!HHI", CREATE_PERMISSION, len(body) + 24, COOKIE) + tid
        body += attr(A_MI, hmac.new(key, hdr + body, hashlib.sha1).digest())
        hdr = struct.pack("!HHI", CREATE_PERMISSION, len(body) + 8, COOKIE) + tid
        crc = (binascii.crc32(hdr + body) & 0xFFFFFFFF) ^ 0x5354554E
        msg = hdr + body + attr(A_FP, struct.pack("!I", crc))
        mtype, attrs = c.ask(tid, msg)
        print(p, "timeout" if mtype is None else result(mtype, attrs))
        sys.stdout.flush()
    # Release the allocation (Refresh, lifetime 0).
    tid, msg = build(REFRESH, [(A_LIFETIME, struct.pack("!I", 0))] + auth, key)
    c.ask(tid, msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
