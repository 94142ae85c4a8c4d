#!/usr/bin/python3
"""turnpolicyd_ice.py - real TURN clients for the enforcement tests.

Run with Debian's /usr/bin/python3 (python3-aiortc brings aioice 0.8).
Every address is on 127.0.0.1: the TURN servers, the relayed addresses
and so every peer a packet is sent to.

  ice    two aioice agents doing relay-only ICE (TransportPolicy.RELAY)
         through coturn, each with its own TURN credential; once
         connected ("connected <unix time>" on stdout) both send a
         datagram every --interval-ms for --seconds, and at the end one
         JSON line "result {...}" gives, per direction, how many arrived
         and the Unix time of the first and last arrival.
  alloc  one TURN allocation (aioice's TURN client, which refreshes it)
         held for --seconds: "allocated <relay>" or "refused <why>".
  cli    log in to coturn's admin CLI (telnet) and print the answer to
         one command (e.g. "ps <username>").

Exit status 0 unless the mode could not do its job (ICE did not
connect, the allocation or the CLI login failed).
"""
import argparse
import asyncio
import json
import socket
import sys
import time

import aioice
from aioice import stun, turn


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def why(exc):
    """A short reason for a failure: the STUN error code if there is one."""
    if isinstance(exc, stun.TransactionFailed):
        return "%s %s" % (exc.response.attributes.get("ERROR-CODE"),
                          exc.response.message_method)
    return "%s %s" % (type(exc).__name__, exc)


def agent(controlling, server, user, password):
    return aioice.Connection(
        ice_controlling=controlling,
        components=1,
        turn_server=server,
        turn_username=user,
        turn_password=password,
        turn_transport="udp",
        use_ipv6=False,
        transport_policy=aioice.TransportPolicy.RELAY,
    )


async def ice(args):
    a = agent(True, hostport(args.turn), args.user, args.password)
    b = agent(False, hostport(args.turn2 or args.turn), args.user2,
              args.password2)
    try:
        await asyncio.wait_for(
            asyncio.gather(a.gather_candidates(), b.gather_candidates()), 10)
        for x, y in ((a, b), (b, a)):
            if not y.local_candidates:
                print("refused no relayed candidate", flush=True)
                return 1
            for c in y.local_candidates:
                assert c.host.startswith("127."), c.host
                await x.add_remote_candidate(c)
            await x.add_remote_candidate(None)
            x.remote_username = y.local_username
            x.remote_password = y.local_password
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        print("refused %s" % why(exc), flush=True)
        return 1
    print("connected %.6f" % time.time(), flush=True)

    stats = {"a_to_b": [0, None, None], "b_to_a": [0, None, None]}
    sent = {"a": 0, "b": 0}
    payload = b"x" * args.size

    async def sender(conn, tag, end):
        while time.time() < end:
            try:
                await conn.send(payload)
                sent[tag] += 1
            except Exception:  # noqa: BLE001 - a cut relay may refuse
                pass
            await asyncio.sleep(args.interval_ms / 1000.0)

    async def receiver(conn, key):
        while True:
            try:
                await conn.recv()
            except Exception:  # noqa: BLE001 - closed
                return
            now = time.time()
            s = stats[key]
            s[0] += 1
            if s[1] is None:
                s[1] = now
            s[2] = now

    end = time.time() + args.seconds
    rb = asyncio.ensure_future(receiver(b, "a_to_b"))
    ra = asyncio.ensure_future(receiver(a, "b_to_a"))
    await asyncio.gather(sender(a, "a", end), sender(b, "b", end))
    await asyncio.sleep(0.3)
    rb.cancel()
    ra.cancel()
    result = {k: {"n": v[0], "first": v[1], "last": v[2]}
              for k, v in stats.items()}
    result["sent"] = sent
    print("result " + json.dumps(result), flush=True)
    for c in (a, b):
        try:
            await asyncio.wait_for(c.close(), 2)
        except Exception:  # noqa: BLE001
            pass
    return 0


class Sink(asyncio.DatagramProtocol):
    def datagram_received(self, data, addr):
        pass


async def alloc(args):
    try:
        transport, _ = await asyncio.wait_for(turn.create_turn_endpoint(
            Sink, server_addr=hostport(args.turn), username=args.user,
            password=args.password, lifetime=600), 10)
    except Exception as exc:  # noqa: BLE001
        print("refused %s" % why(exc), flush=True)
        return 1
    relay = transport.get_extra_info("sockname")
    assert relay[0].startswith("127."), relay
    print("allocated %s:%d" % relay, flush=True)
    await asyncio.sleep(args.seconds)
    transport.close()
    await asyncio.sleep(0.2)
    return 0


def cli(args):
    host, port = hostport(args.cli)
    with open(args.password_file) as f:
        password = f.read().strip()
    s = socket.create_connection((host, port), timeout=5)
    buf = b""

    def until(pred):
        nonlocal buf
        while not pred(buf):
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError(buf[-200:])
            buf += chunk.replace(b"\0", b"")

    until(lambda b: b"Enter password:" in b)
    buf = b""
    s.sendall(password.encode() + b"\r\n")
    until(lambda b: b.endswith(b"> ") or b"Enter password:" in b)
    if b"Enter password:" in buf:
        print("login refused")
        return 1
    buf = b""
    s.sendall(args.command.encode() + b"\r\n")
    until(lambda b: b == b"> " or b.endswith(b"\n> "))
    sys.stdout.write(buf[:-2].decode("latin-1").replace("\r\n", "\n"))
    s.sendall(b"quit\r\n")
    s.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ice", "alloc", "cli"])
    ap.add_argument("--turn", help="IP:PORT of coturn (agent A)")
    ap.add_argument("--turn2", help="IP:PORT for agent B (default --turn)")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--user2")
    ap.add_argument("--password2")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--cli", help="IP:PORT of coturn's admin CLI")
    ap.add_argument("--password-file", help="the CLI password")
    ap.add_argument("--command", default="ps")
    args = ap.parse_args()
    for a in (args.turn, args.turn2, args.cli):
        if a is not None and not a.startswith("127."):
            ap.error("loopback addresses only")
    if args.mode == "cli":
        return cli(args)
    return asyncio.run(ice(args) if args.mode == "ice" else alloc(args))


if __name__ == "__main__":
    sys.exit(main())
