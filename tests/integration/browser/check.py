#!/usr/bin/python3
"""check.py - what the browser test asserts about one page run.

usage: check.py MODE DRIVER.json BROWSER.log UPSTREAM.log TRACE PROXY_HOST
  MODE  allowed  the SDK with a valid token: every request it sent through
                 the proxy was allowed and reached the fake upstream, with
                 the token stripped; none looped back to the proxy; no
                 CORS error in the console; the SDK got as far as it can
                 against a fake upstream
        refused  the SDK with no token or a revoked one: every request
                 through the proxy was refused (401), none reached the
                 upstream, and the page could read the refusals (no CORS
                 error)
        relay    iceServers from the credentials endpoint, a relay-only
                 RTCPeerConnection pair exchanged a message through coturn
BROWSER.log: the nginx access log lines of this run ("$status $reason
up=$requested req=..."), UPSTREAM.log: the fake upstream's lines of this
run, TRACE: strace of Chromium (connect/send*), whose every packet must
stay on 127.0.0.0/8 or ::1.  TP_TOKENS (environment): the tokens of this
run, which must appear in no log.  Prints "P<TAB>name" or
"F<TAB>name<TAB>why" lines for the shell's ok/not_ok.
"""
import ipaddress
import json
import os
import re
import sys

mode, drv, blog, ulog, trace, proxy_host = sys.argv[1:7]
tokens = [t for t in os.environ.get("TP_TOKENS", "").split() if t]
out = []


def verdict(name, good, why=""):
    out.append(("P\t%s" % name) if good else ("F\t%s\t%s" % (name, why)))


def scrub(s):
    for t in tokens:
        s = s.replace(t, "[token]")
    return s[:300]


d = json.load(open(drv))
lines = [l.rstrip("\n") for l in open(blog)]
ups = [l.rstrip("\n") for l in open(ulog)]
res = d.get("result") or {}
console = d.get("console", [])
cors = [c["text"] for c in console
        if re.search(r"CORS|Access-Control-Allow", c["text"])]
proxied = [r for r in d["requests"] if "/b/" in r["url"]
           and r["url"].split("/")[2].startswith(proxy_host)]

if mode in ("allowed", "refused"):
    verdict("%s: Chromium sent the SDK's requests through proxy.url (%d, "
            "%d logged by nginx)" % (mode, len(proxied), len(lines)),
            len(proxied) > 0 and len(lines) > 0,
            "steps %s error %s" % (res.get("steps"), scrub(str(res.get("error")))))
    verdict("%s: no CORS error in the console" % mode, not cors,
            scrub(" | ".join(cors[:3])))
    looped = [l for l in lines if " up=" + proxy_host in l]
    verdict("%s: no request looped back to the proxy" % mode, not looped,
            scrub(" | ".join(looped[:3])))

if mode == "allowed":
    status = {}
    for l in lines:
        f = l.split(" ")
        status[f[1]] = status.get(f[1], 0) + 1
    bad = [l for l in lines if l.split(" ")[1] not in ("ok", "preflight")]
    verdict("allowed: every request the SDK sent through the proxy was allowed "
            "(%s)" % ", ".join("%s %d" % kv for kv in sorted(status.items())),
            lines and not bad, scrub(" | ".join(bad[:4])))
    hosts = sorted({re.sub(r".*host=", "", u) for u in ups})
    # against a fake upstream the SDK gets as far as configuration,
    # trouter, conversations and telemetry (registration needs a real
    # trouter answer)
    verdict("allowed: %d reached the fake upstream, as %s" % (len(ups), " ".join(hosts)),
            {"ecs.communication.microsoft.com",
             "go.trouter.communication.microsoft.com"} <= set(hosts),
            "%d upstream requests" % len(ups))
    verdict("allowed: the SDK got to %s" % ",".join(res.get("steps") or []),
            "CallAgent" in (res.get("steps") or []) or len(ups) >= 3,
            scrub(str(res.get("error"))))

if mode == "refused":
    # a preflight with a refused token is answered (204, the reason of
    # the refusal logged) so that the page reads the real request's 401
    bad = [l for l in lines if not (l.startswith("401 ") or
                                   l.startswith("204 "))]
    n401 = sum(1 for l in lines if l.startswith("401 "))
    verdict("refused: every request through the proxy was refused with 401 "
            "(%d, plus %d preflights)" % (n401, len(lines) - n401 - len(bad)),
            n401 > 0 and not bad, scrub(" | ".join(bad[:4])))
    verdict("refused: nothing reached the upstream", not ups,
            scrub(" | ".join(ups[:3])))
    reasons = sorted({l.split(" ")[1] for l in lines if l.startswith("401 ")})
    readable = [r for r in d["responses"] if r["status"] == 401]
    verdict("refused: the page received the 401s (%s) as responses, not as "
            "network errors (%d)" % (",".join(reasons), len(readable)),
            len(readable) > 0)

if mode == "relay":
    cands = res.get("candidates") or []
    verdict("relay: credentials endpoint answered the page (%s)"
            % ",".join(res.get("steps") or []),
            "credentials:200" in (res.get("steps") or []) and
            "CallClient(turn)" in (res.get("steps") or []),
            scrub(str(res.get("error"))))
    # the relay address is coturn's relay-ip: 127.0.0.1, or 127.0.0.2 on
    # coturn >= 4.13 (which will not relay from its database's host)
    verdict("relay: only relay candidates, on a loopback address (%d)"
            % len(cands),
            cands and all(" typ relay" in c and len(c.split()) > 4 and
                          c.split()[4].startswith("127.")
                          for c in cands), scrub(" | ".join(cands[:3])))
    verdict("relay: a data channel message went through coturn",
            res.get("received") == "through the relay",
            "steps %s error %s" % (res.get("steps"), scrub(str(res.get("error")))))
    verdict("relay: no CORS error in the console", not cors,
            scrub(" | ".join(cors[:3])))

# Tokens: in no nginx line of this run, no upstream line.
leak = [l for l in lines + ups if any(t in l for t in tokens)]
verdict("%s: no token in nginx's access log or at the upstream" % mode,
        not leak, "%d lines" % len(leak))

# Packets: every connect (TCP) and send to an address stays on loopback.
def loopback(a):
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        return False    # not understood: counted as outside
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified

outside = set()
n = 0
for l in open(trace, errors="replace"):
    # "PID call(FD<TYPE:[local->remote]>, ..." (strace -yy; the fd's
    # annotation may hold "->" and IPv6 brackets: it ends at "]>")
    m = re.match(r"\d+\s+(connect|sendto|sendmsg|sendmmsg)\((\d+)(<.*?\]>)?(.*)", l)
    if not m:
        continue
    n += 1
    call, fdinfo, rest = m.group(1), m.group(3) or "", m.group(4)
    addrs = re.findall(r'inet_addr\("([^"]+)"\)', rest)
    addrs += re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', rest)
    if call == "connect" and "UDP" in fdinfo:
        continue    # a UDP connect sends nothing (route probing)
    m2 = (re.search(r"->\[([0-9a-fA-F.:]+)\]:\d+\]>$", fdinfo) or
          re.search(r"->([0-9.]+):\d+\]>$", fdinfo))
    if m2 and call != "connect":
        addrs.append(m2.group(1))
    for a in addrs:
        if not loopback(a):
            outside.add("%s %s" % (call, a))
verdict("%s: Chromium sent nothing outside 127.0.0.0/8 and ::1 (%d socket "
        "calls traced)" % (mode, n), n > 0 and not outside,
        " ".join(sorted(outside)[:6]))
print("\n".join(out))
