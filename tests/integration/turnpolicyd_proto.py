#!/usr/bin/python3
"""turnpolicyd_proto.py - hostile and awkward Redis-protocol input against
a running turnpolicyd on 127.0.0.1, printed as TAP lines.

usage: turnpolicyd_proto.py PORT PASSWORD_FILE MAX_REQUEST

Checks: NOAUTH before AUTH, wrong/right AUTH, pipelining answered in
order, requests split at every byte, malformed input (inline commands,
nested arrays, integers, absurd lengths) answered with one error and a
close, an oversized request refused, a client that never reads or sends
half a request stalls nobody else.  Only 127.0.0.1 is ever contacted.
"""
import socket
import sys
import time

PORT = int(sys.argv[1])
PASSWORD = open(sys.argv[2], "rb").read().rstrip(b"\n")
MAX_REQUEST = int(sys.argv[3])
failed = 0


def ok(cond, name, why=""):
    global failed
    if cond:
        print("ok - " + name)
    else:
        failed += 1
        print("not ok - " + name + (" # " + why if why else ""))
    sys.stdout.flush()


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    return s


def read_reply(f):
    """One RESP reply from a file object: bytes for +/-/:/$, list for *,
    None for nil; raises EOFError on close."""
    line = f.readline()
    if not line:
        raise EOFError
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-", b":"):
        return t + rest
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b"*":
        return [read_reply(f) for _ in range(int(rest))]
    raise ValueError("bad reply %r" % line)


def closed(s, timeout=3):
    """True if the peer closes s (after whatever it still sends)."""
    s.settimeout(timeout)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def authed():
    s = connect()
    f = s.makefile("rb")
    s.sendall(cmd("AUTH", PASSWORD))
    assert read_reply(f) == b"+OK"
    return s, f


# 1. Authentication
s = connect()
f = s.makefile("rb")
s.sendall(cmd("GET", "turn/realm/x/user/y/key"))
r = read_reply(f)
ok(r.startswith(b"-NOAUTH"), "a command before AUTH gets -NOAUTH", repr(r))
s.sendall(cmd("AUTH", "wrong-password"))
r = read_reply(f)
ok(r == b"-ERR invalid password", "a wrong AUTH password is refused", repr(r))
s.sendall(cmd("AUTH", PASSWORD[:-1]))
r = read_reply(f)
ok(r == b"-ERR invalid password", "a prefix of the password is refused")
s.sendall(cmd("AUTH", PASSWORD))
r = read_reply(f)
ok(r == b"+OK", "the right AUTH password is accepted", repr(r))
s.sendall(cmd("PING") + cmd("SELECT", "0"))
ok(read_reply(f) == b"+PONG" and read_reply(f) == b"+OK",
   "PING and SELECT after AUTH")
s.close()
# coturn >= 4.6.3 sends "AUTH <user> <password>" when given user=.
s = connect()
f = s.makefile("rb")
s.sendall(cmd("AUTH", "turnserver", "wrong-password") + cmd("PING"))
r = read_reply(f)
r2 = read_reply(f)
ok(r == b"-ERR invalid password" and r2.startswith(b"-NOAUTH"),
   "AUTH user with a wrong password is refused", repr((r, r2)))
s.sendall(cmd("AUTH", "turnserver", PASSWORD) + cmd("PING"))
r = read_reply(f)
r2 = read_reply(f)
ok(r == b"+OK" and r2 == b"+PONG",
   "AUTH with a user name and the right password is accepted",
   repr((r, r2)))
s.sendall(cmd("AUTH", "a", "b", "c"))
r = read_reply(f)
ok(r.startswith(b"-ERR wrong number"), "AUTH with 3 arguments is refused",
   repr(r))
s.close()

# 2. Pipelining: one write, replies in order.
s, f = authed()
s.sendall(cmd("PING") + cmd("GET", "turn/realm/no.such/max-bps") +
          cmd("FLUSHALL") + cmd("KEYS", "turn/*/allocation/*/status") +
          cmd("PING", "last"))
r = [read_reply(f) for _ in range(5)]
ok(r[0] == b"+PONG" and r[1] is None and r[2].startswith(b"-ERR") and
   r[3] == [] and r[4] == b"last", "pipelined requests answered in order",
   repr(r))

# 3. A request split at every byte.
msg = cmd("PING", "split")
for b in msg:
    s.sendall(bytes([b]))
    time.sleep(0.001)
ok(read_reply(f) == b"split", "a request fed one byte at a time")

# 4. Writes are refused: the policy lives in PostgreSQL.
s.sendall(cmd("SET", "turn/realm/x/user/y/key", "00" * 16))
r = read_reply(f)
ok(r.startswith(b"-ERR"), "SET of a user key is refused", repr(r))
s.close()

# 5. Malformed input: one error reply, then the connection is closed.
bad = {
    "an inline command": b"PING\r\n",
    "a nested array": b"*1\r\n*1\r\n$4\r\nPING\r\n",
    "an integer argument": b"*2\r\n$4\r\nPING\r\n:5\r\n",
    "a nil argument": b"*2\r\n$4\r\nPING\r\n$-1\r\n",
    "a status line argument": b"*1\r\n+PING\r\n",
    "a huge array length": b"*2000000000\r\n",
    "a bad bulk length": b"*1\r\n$x\r\n",
    "a negative array length": b"*-5\r\n",
    "binary garbage": bytes(range(256)),
}
for name, data in bad.items():
    s, f = authed()
    s.sendall(data)
    try:
        r = read_reply(f)
    except EOFError:
        r = b"(closed without reply)"
    ok(r == b"-ERR protocol error" and closed(s),
       "%s gets '-ERR protocol error' and a close" % name, repr(r))
    s.close()

# 6. Oversized request (declared and actual).
s, f = authed()
s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n" % (MAX_REQUEST * 4))
chunk = b"x" * 8192
sent = 0
try:
    while sent < MAX_REQUEST * 2:
        s.sendall(chunk)
        sent += len(chunk)
except (BrokenPipeError, ConnectionResetError):
    pass
try:
    r = read_reply(f)
except (EOFError, ConnectionResetError):
    r = b"(closed without reply)"
ok(r == b"-ERR request too large", "a request above max_request is refused",
   repr(r))
ok(closed(s), "... and its connection closed")
s.close()

s, f = authed()
s.sendall(b"*2\r\n$4\r\nPING\r\n$999999999999\r\n")
ok(not closed(s, 0.5), "a large declared length alone waits for data")
s.close()

# 7. Nobody stalls the others.
half, _ = authed()
half.sendall(b"*2\r\n$4\r\nPING\r\n$10\r\nabc")     # never finished
hog, _ = authed()
hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
hog.settimeout(0.2)
pings = cmd("KEYS", "turn/origin/*") * 2000
t0 = time.time()
try:
    for _ in range(50):                              # never reads replies
        hog.sendall(pings)
except (socket.timeout, BlockingIOError):
    pass
s, f = authed()
t1 = time.time()
s.sendall(cmd("PING"))
r = read_reply(f)
dt = time.time() - t1
ok(r == b"+PONG" and dt < 1.0,
   "a half-sent request and a client that never reads stall nobody "
   "(PING in %.3f s)" % dt, repr(r))
s.close()
half.close()
hog.close()

# 8. QUIT closes after +OK.
s, f = authed()
s.sendall(cmd("QUIT"))
ok(read_reply(f) == b"+OK" and closed(s), "QUIT answers +OK and closes")
s.close()

sys.exit(1 if failed else 0)
