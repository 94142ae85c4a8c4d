#!/usr/bin/python3
"""scale_cut.py - revocation -> live relay cut latency, for tests/bench/scale.sh.

Run with Debian's /usr/bin/python3 (python3-aiortc brings aioice 0.8),
PGHOST/PGPORT/PGUSER set for psql (tests/pg.sh exports them).  For each
line "USER USERNAME PASSWORD" of --creds, one after the other: a TURN
allocation through --turn (aioice's client, long-term credentials, so
coturn asks turnpolicyd), a peer socket on 127.0.0.1 that the client
sends one datagram to (ChannelBind: the permission), then the peer
streams a 100-byte datagram every --interval-ms to the relayed address.
After --warm seconds of traffic, turnpolicy.revoke_user(REALM, USER)
commits (psql; the time taken when psql returns is the commit), and the
latency is the arrival time of the last datagram after it, once nothing
has arrived for --quiet seconds.  Output, one line per victim:
  "cut USER lat_ms=L n_before=N n_after=M"  or, with no cut within
--timeout seconds, "cut USER lat_ms=<the timeout> timeout ...".  Before
each allocation, --pid (turnpolicyd) is waited for until it burns at most
2 clock ticks in 0.5 s: the reload the previous revocation started is
over, so every cut starts idle.  Exit status 0 unless an allocation or
the stream before the revocation failed.  Every address is 127.0.0.1.
"""
import argparse
import asyncio
import subprocess
import sys
import time

from aioice import turn


class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.n = 0
        self.last = None

    def datagram_received(self, data, addr):
        self.n += 1
        self.last = time.time()


class Peer(asyncio.DatagramProtocol):
    pass


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])  # utime, stime


async def quiesce(pid):
    for _ in range(60):
        t0 = ticks(pid)
        await asyncio.sleep(0.5)
        if ticks(pid) - t0 <= 2:
            return


def revoke(realm, user):
    """Commit revoke_user; the time psql returned."""
    sql = "SELECT turnpolicy.revoke_user('%s', '%s')" % (realm, user)
    subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                    "-d", "postgres", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)
    return time.time()


async def one(args, user, username, password):
    loop = asyncio.get_running_loop()
    try:
        transport, client = await asyncio.wait_for(turn.create_turn_endpoint(
            Client, server_addr=hostport(args.turn), username=username,
            password=password, lifetime=600), 10)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        print("alloc %s refused: %s %s" % (user, type(exc).__name__, exc),
              file=sys.stderr, flush=True)
        return False
    relay = transport.get_extra_info("sockname")
    assert relay[0].startswith("127."), relay
    peer, _ = await loop.create_datagram_endpoint(
        Peer, local_addr=("127.0.0.1", 0))
    transport.sendto(b"hello", peer.get_extra_info("sockname"))
    await asyncio.sleep(0.2)
    running = True

    async def stream():
        payload = b"x" * 100
        while running:
            peer.sendto(payload, relay)
            await asyncio.sleep(args.interval_ms / 1000.0)

    task = asyncio.ensure_future(stream())
    ok = True
    try:
        await asyncio.sleep(args.warm)
        n_before = client.n
        if n_before < 10:
            print("stream %s: only %d datagrams before the revocation"
                  % (user, n_before), file=sys.stderr, flush=True)
            ok = False
            return ok
        t0 = await loop.run_in_executor(None, revoke, args.realm, user)
        n0 = client.n
        while True:
            await asyncio.sleep(0.02)
            now = time.time()
            last = client.last if client.last is not None else 0
            if now - max(last, t0) >= args.quiet:
                print("cut %s lat_ms=%.1f n_before=%d n_after=%d"
                      % (user, max(0.0, last - t0) * 1e3, n_before,
                         client.n - n0), flush=True)
                break
            if now - t0 > args.timeout:
                print("cut %s lat_ms=%.1f timeout n_before=%d n_after=%d"
                      % (user, args.timeout * 1e3, n_before, client.n - n0),
                      flush=True)
                break
    finally:
        running = False
        task.cancel()
        peer.close()
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - the relay is gone
            pass
        await asyncio.sleep(0.1)
    return ok


async def run(args):
    with open(args.creds) as f:
        victims = [line.split() for line in f if line.strip()]
    for user, username, password in victims:
        if args.pid:
            await quiesce(args.pid)
        if not await one(args, user, username, password):
            return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turn", required=True, help="IP:PORT of coturn")
    ap.add_argument("--creds", required=True)
    ap.add_argument("--realm", required=True)
    ap.add_argument("--interval-ms", type=float, default=5)
    ap.add_argument("--warm", type=float, default=0.5)
    ap.add_argument("--quiet", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--pid", type=int, help="wait for it to go idle first")
    args = ap.parse_args()
    if not args.turn.startswith("127."):
        ap.error("loopback addresses only")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
