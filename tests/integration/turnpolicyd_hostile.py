#!/usr/bin/python3
"""turnpolicyd_hostile.py - a TURN client that does not know the password.

Sends, each from a fresh UDP socket (a fresh coturn session), an Allocate
without credentials, then the Allocate with USERNAME, REALM, NONCE and a
MESSAGE-INTEGRITY made with the given password (RFC 5389/5766 long-term
credentials), and prints the final answer's class: "401" (or another
error code), "allocated" or "timeout", one per attempt, then a summary
line "attempts=N allocated=N errors={code: n}".  Used by
turnpolicyd_hostile.sh to flood coturn with forged usernames, wrong
passwords and expired or revoked credentials of a real user.  Loopback
only: the server must be 127.x.

    turnpolicyd_hostile.py --turn 127.0.0.1:3478 --user U --password P \
        [--count N]
"""
import argparse
import collections
import hashlib
import hmac
import os
import socket
import struct
import sys

MAGIC = 0x2112A442
ALLOCATE = 0x0003
A_USERNAME, A_MI, A_ERROR, A_REALM, A_NONCE, A_TRANSPORT = (
    0x0006, 0x0008, 0x0009, 0x0014, 0x0015, 0x0019)


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def message(tid, attrs, key=None):
    body = b"".join(attrs)
    if key is None:
        return struct.pack("!HHI", ALLOCATE, len(body), MAGIC) + tid + body
    # MESSAGE-INTEGRITY covers the header with the length including it
    head = struct.pack("!HHI", ALLOCATE, len(body) + 24, MAGIC) + tid
    mi = hmac.new(key, head + body, hashlib.sha1).digest()
    return head + body + attr(A_MI, mi)


def parse(data):
    mtype, length, _ = struct.unpack("!HHI", data[:8])
    attrs, off = {}, 20
    while off + 4 <= 20 + length and off + 4 <= len(data):
        t, n = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(t, data[off + 4:off + 4 + n])
        off += 4 + n + (4 - n % 4) % 4
    return mtype, attrs


def code(attrs):
    e = attrs.get(A_ERROR)
    if e is None or len(e) < 4:
        return "error"
    return str((e[2] & 7) * 100 + e[3])


def attempt(server, user, password):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        transport = attr(A_TRANSPORT, bytes([17, 0, 0, 0]))
        s.sendto(message(os.urandom(12), [transport]), server)
        mtype, attrs = parse(s.recv(2048))
        if mtype & 0x0110 != 0x0110 or code(attrs) != "401":
            return "unexpected-first-%04x" % mtype
        realm, nonce = attrs[A_REALM], attrs[A_NONCE]
        key = hashlib.md5(user.encode() + b":" + realm + b":" +
                          password.encode()).digest()
        s.sendto(message(os.urandom(12), [
            transport, attr(A_USERNAME, user.encode()),
            attr(A_REALM, realm), attr(A_NONCE, nonce)], key), server)
        mtype, attrs = parse(s.recv(2048))
        if mtype == 0x0103:
            return "allocated"
        return code(attrs)
    except socket.timeout:
        return "timeout"
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turn", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--count", type=int, default=1)
    a = ap.parse_args()
    host, port = a.turn.rsplit(":", 1)
    if not host.startswith("127."):
        ap.error("loopback addresses only")
    seen = collections.Counter()
    for _ in range(a.count):
        seen[attempt((host, int(port)), a.user, a.password)] += 1
    print("attempts=%d allocated=%d errors=%s" % (
        a.count, seen["allocated"],
        dict((k, v) for k, v in seen.items() if k != "allocated")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
