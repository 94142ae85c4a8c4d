#!/usr/bin/python3
"""make_corpus.py - write the seed corpora of the fuzz targets.

    tests/fuzz/corpus_resp/      for fuzz_resp: two control bytes (flags,
                                 split; see fuzz_resp.c) + a byte stream
                                 as stock coturn 4.6.1 sends it to its
                                 redis-userdb / redis-statsdb
    tests/fuzz/corpus_username/  for fuzz_username: usernames (optionally
                                 "\\n" + password) and JSON Web Tokens for
                                 the fixed keys of fuzz_username.c
    tests/fuzz/corpus_jwt/       for fuzz_jwt: a mode byte + a token, a
                                 payload or "header\\n payload" (the cases
                                 of tests/unit/test_jwt.c)
    tests/fuzz/corpus_host/      for fuzz_host: lines, every string of
                                 tests/unit/test_host.c
    tests/fuzz/corpus_peer/      for fuzz_peer and fuzz_peer_export: lines
                                 (+CIDR, -CIDR, !, addresses), every string
                                 of tests/unit/test_peer.c
    tests/fuzz/corpus_config/    for fuzz_config: configuration texts of
                                 tests/unit/test_config.c, the example
    tests/fuzz/corpus_base/      for fuzz_base: base files as
                                 policy/src/store_base.c writes them
                                 (x86-64 layout)

The files are committed; rerun this after changing it (it rewrites every
directory above, except the regress-* files: inputs of crashes found,
replayed by every run).  The secrets and NOW below must match
fuzz_username.c and fuzz_jwt.c.
"""
import base64
import hashlib
import hmac
import json
import struct
import os

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1700000000
REALM = "fuzz.test"
K1 = b"fuzz-signing-secret-k1-0123456789"
K0 = b"fuzz-verify-only-secret-k0-abcdef"
KOLD = b"fuzz-retired-secret-old-ghijklmno"
LEGACY = b"fuzz-legacy-static-auth-secret"
J1 = b"fuzz-jwt-hs256-key-j1-0123456789abcdef"
JNOKID = b"fuzz-jwt-hs256-key-nokid-0123456789abc"


def resp(*args):
    """One command as hiredis formats it: an array of bulk strings."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def alloc_key(user, sid, kind):
    return "turn/realm/%s/user/%s/allocation/%018d/%s" % (REALM, user,
                                                         sid, kind)


def resp_corpus():
    user = "%d:alice:k1:%d" % (NOW + 600, NOW)
    legacy = "%d:bob" % (NOW + 600)
    new = ("new lifetime=600, type=UDP, local=127.0.0.1:3478, "
           "remote=127.0.0.1:40001, ssl=NONE, cipher=NONE")
    new6 = ("new lifetime=600, type=TCP, local=[::1]:3478, "
            "remote=[::1]:40002, ssl=NONE, cipher=NONE")
    refreshed = new.replace("new ", "refreshed ", 1)
    traffic = "rcvp=10, rcvb=1000, sentp=12, sentb=2000"
    userdb_connect = resp("AUTH", "fuzz-password") + resp("SELECT", "0")
    statsdb = (
        userdb_connect
        + resp("KEYS", "turn/*/allocation/*/status")
        + resp("SET", alloc_key(user, 990001, "status"), new)
        + resp("PUBLISH", alloc_key(user, 990001, "status"), new)
        + resp("PUBLISH", alloc_key(user, 990001, "traffic"), traffic)
        + resp("PUBLISH", alloc_key(user, 990001, "traffic/peer"), traffic)
        + resp("SET", alloc_key(user, 990001, "status"), refreshed)
        + resp("PUBLISH", alloc_key(user, 990001, "status"), refreshed)
        + resp("DEL", alloc_key(user, 990001, "status"), "")
        + resp("PUBLISH", alloc_key(user, 990001, "status"), "deleted")
        + resp("PUBLISH", alloc_key(user, 990001, "total_traffic"), traffic)
        + resp("PUBLISH", alloc_key(user, 990001, "total_traffic/peer"),
               traffic)
        + resp("PUBLISH", "__XXX__", "__YYY__"))
    return {
        # flags 1: starts unauthenticated, as coturn's connections do
        "auth_select": b"\x01\x00" + userdb_connect,
        "auth_wrong": b"\x01\x03" + resp("AUTH", "nope") * 6,
        "noauth_get": b"\x01\x00" + resp("GET", "turn/realm/%s/user/%s/key"
                                         % (REALM, user)),
        "get_key": b"\x00\x00" + resp("GET", "turn/realm/%s/user/%s/key"
                                      % (REALM, user)),
        "get_key_legacy": b"\x00\x05" + resp(
            "GET", "turn/realm/%s/user/%s/key" % (REALM, legacy)),
        "get_key_percent": b"\x00\x00" + resp(
            "GET", "turn/realm/%s/user/%d:mal%%lory:k1:%d/key"
            % (REALM, NOW + 600, NOW)),
        "realm_options": b"\x00\x00" + b"".join(
            resp("GET", "turn/realm/%s/%s" % (REALM, o))
            for o in ("max-bps", "total-quota", "user-quota")),
        "origins": b"\x00\x00" + resp("KEYS", "turn/origin/*")
        + resp("GET", "turn/origin/https://app.fuzz.test"),
        "peer_sets": b"\x00\x02" + resp("KEYS", "turn/realm/*/allowed-peer-ip")
        + resp("KEYS", "turn/realm/*/denied-peer-ip")
        + resp("SMEMBERS", "turn/realm/%s/allowed-peer-ip" % REALM)
        + resp("SMEMBERS", "turn/realm/%s/denied-peer-ip" % REALM),
        "secret_oauth": b"\x00\x00"
        + resp("SMEMBERS", "turn/realm/%s/secret" % REALM)
        + resp("HGETALL", "turn/oauth/kid/k1")
        + resp("HGETALL", "turn/admin_user/x"),
        "statsdb_pipelined": b"\x01\x00" + statsdb,
        "statsdb_split": b"\x01\x29" + statsdb,
        # flags 8: debug log level (every command formatted and escaped)
        "statsdb_debug": b"\x09\x00" + statsdb,
        "get_key_debug": b"\x08\x00" + resp("GET", "turn/realm/%s/user/%s/key"
                                            % (REALM, user)),
        "statsdb_ipv6": b"\x00\x00"
        + resp("PUBLISH", alloc_key(user, 990002, "status"), new6)
        + resp("PUBLISH", alloc_key(user, 990002, "traffic"), traffic)
        + resp("PUBLISH", alloc_key(user, 990002, "status"), "deleted"),
        "statsdb_full": b"\x04\x00" + b"".join(
            resp("PUBLISH", alloc_key(user, 990010 + i, "status"), new)
            for i in range(4)),
        "info_ping_quit": b"\x00\x00" + resp("PING") + resp("PING", "hi")
        + resp("INFO") + resp("CONFIG", "GET", "save") + resp("QUIT")
        + resp("PING"),
        "read_only": b"\x00\x00" + resp("SET", "turn/realm/x/user/y/key", "k")
        + resp("DEL", "turn/realm/x/user/y/key"),
        "nul_arg": b"\x00\x00" + resp("GET", b"turn/realm/a\x00b/user/c/key"),
        "empty_and_inline": b"\x00\x00" + b"*0\r\n" + b"PING\r\n",
        "nested": b"\x00\x00" + b"*2\r\n*1\r\n$4\r\nPING\r\n$1\r\nx\r\n",
        "huge_count": b"\x00\x00" + b"*2000000000\r\n",
        "huge_bulk": b"\x00\x00" + b"*2\r\n$3\r\nGET\r\n$99999999\r\n",
        "too_large": b"\x02\x00" + resp("GET", "x" * 100),
        "integer_arg": b"\x00\x00" + b"*2\r\n$3\r\nGET\r\n:1\r\n",
    }


def hs256(key, header, claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    c = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(key, h + b"." + c, hashlib.sha256).digest())
    return h + b"." + c + b"." + sig


def password(secret, username):
    return base64.b64encode(hmac.new(secret, username.encode(),
                                     hashlib.sha1).digest())


def username_corpus():
    v1 = "%d:alice:k1:%d" % (NOW + 600, NOW)
    v0 = "%d:bob:k0:%d" % (NOW + 600, NOW - 60)
    legacy = "%d:carol" % (NOW + 600)
    claims = {"sub": "alice", "realm": REALM, "iss": "https://issuer.fuzz",
              "aud": "turn", "exp": NOW + 300, "iat": NOW, "nbf": NOW,
              "jti": "j-1"}
    out = {
        "v1_k1": v1.encode(),
        "v1_k1_password": v1.encode() + b"\n" + password(K1, v1),
        "v1_k0_password": v0.encode() + b"\n" + password(K0, v0),
        "v1_retired": ("%d:dave:old:%d" % (NOW + 600, NOW)).encode(),
        "v1_unknown_kid": ("%d:erin:k9:%d" % (NOW + 600, NOW)).encode(),
        "v1_expired": ("%d:alice:k1:%d" % (NOW - 10, NOW - 600)).encode(),
        "v1_future_iat": ("%d:alice:k1:%d" % (NOW + 900, NOW + 300)).encode(),
        "v1_too_long_ttl": ("%d:alice:k1:%d" % (NOW + 10**6, NOW)).encode(),
        "legacy_password": legacy.encode() + b"\n" + password(LEGACY, legacy),
        "bad_char": ("%d:mal%%lory:k1:%d" % (NOW + 600, NOW)).encode(),
        "five_fields": ("%d:a:k1:%d:x" % (NOW + 600, NOW)).encode(),
        "leading_zero": ("0%d:a:k1:%d" % (NOW + 600, NOW)).encode(),
        "jwt_j1": hs256(J1, {"alg": "HS256", "typ": "JWT", "kid": "j1"},
                        claims),
        "jwt_nokid": hs256(JNOKID, {"alg": "HS256", "typ": "JWT"}, claims),
        "jwt_expired": hs256(J1, {"alg": "HS256", "kid": "j1"},
                             dict(claims, exp=NOW - 100)),
        "jwt_aud_list": hs256(J1, {"alg": "HS256", "kid": "j1"},
                              dict(claims, aud=["x", "turn"])),
        "jwt_wrong_iss": hs256(J1, {"alg": "HS256", "kid": "j1"},
                               dict(claims, iss="https://evil")),
        "jwt_alg_none": hs256(J1, {"alg": "none", "kid": "j1"},
                              claims).rsplit(b".", 1)[0] + b".",
        "jwt_alg_rs256": hs256(J1, {"alg": "RS256", "kid": "j1"}, claims),
        "jwt_unknown_kid": hs256(J1, {"alg": "HS256", "kid": "zz"}, claims),
        "jwt_bad_sig": hs256(J1 + b"x", {"alg": "HS256", "kid": "j1"},
                             claims),
    }
    return out


def write(name, files):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        if not old.startswith("regress-"):
            os.remove(os.path.join(d, old))
    for k, v in sorted(files.items()):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    print("%s: %d files" % (name, len(files)))


HS = b"fuzz-jwt-hs256-key-hs-0123456789abcdef"
NOKID = b"fuzz-jwt-hs256-key-nokid-0123456789abc"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jwt_corpus():
    """fuzz_jwt: byte 0 is the mode (see fuzz_jwt.c), cases after
    tests/unit/test_jwt.c."""
    exp = NOW + 600
    good = {"sub": "alice", "iss": "https://issuer.fuzz", "aud": "turn",
            "exp": exp, "iat": NOW, "nbf": NOW, "realm": "fuzz.test",
            "jti": "j-1"}

    def js(o):
        return json.dumps(o, separators=(",", ":")).encode()

    def tok(key, header, payload, sig=None):
        h = b64u(header if isinstance(header, bytes) else js(header))
        c = b64u(payload if isinstance(payload, bytes) else js(payload))
        if sig is None:
            sig = b64u(hmac.new(key, h + b"." + c, hashlib.sha256).digest())
        return h + b"." + c + b"." + sig
    hs = {"alg": "HS256", "typ": "JWT", "kid": "hs"}
    payloads = {
        "good": good,
        "no_exp": dict((k, v) for k, v in good.items() if k != "exp"),
        "expired": dict(good, exp=NOW - 31),
        "exp_leeway": dict(good, exp=NOW - 29),
        "exp_huge": dict(good, exp=2**63 - 1),
        "exp_float": dict(good, exp=1e30),
        "exp_string": dict(good, exp=str(exp)),
        "exp_negative": dict(good, exp=-1),
        "nbf_future": dict(good, nbf=NOW + 31),
        "iat_future": dict(good, iat=NOW + 31),
        "iss_evil": dict(good, iss="https://evil.example"),
        "no_iss": dict((k, v) for k, v in good.items() if k != "iss"),
        "aud_other": dict(good, aud="other"),
        "aud_list": dict(good, aud=["x", "turn"]),
        "aud_list_bad": dict(good, aud=["x", "y"]),
        "aud_empty": dict(good, aud=[]),
        "aud_nonstring": dict(good, aud=["turn", 1]),
        "no_sub": dict((k, v) for k, v in good.items() if k != "sub"),
        "sub_int": dict(good, sub=42),
        "sub_empty": dict(good, sub=""),
        "sub_long": dict(good, sub="x" * 256),
        "sub_max": dict(good, sub="x" * 255),
        "sub_nul": dict(good, sub="al\u0000ice"),
        "tenant": dict(good, tenant="fuzz.test"),
        "jti_long": dict(good, jti="j" * 300),
    }
    out = {}
    for name, p in payloads.items():
        pj = js(p).replace(b"\\u0000", b"\u0000")
        out["signed_" + name] = b"\x01" + pj
        out["alt_" + name] = b"\x09" + pj
        out["raw_" + name] = b"\x00" + tok(HS, hs, pj)
    out["es_good"] = b"\x03" + js(good)
    out["es_expired"] = b"\x03" + js(dict(good, exp=NOW - 100))
    out["nokid_good"] = b"\x11" + js(good)
    out["raw_nokid"] = b"\x00" + tok(NOKID, {"alg": "HS256"}, good)
    bad_headers = [b"not json", b'["alg","HS256"]', b'"HS256"',
                   b'{"typ":"JWT","kid":"hs"}', b'{"alg":256,"kid":"hs"}',
                   b'{"alg":"HS256","kid":"hs","crit":["exp"]}',
                   b'{"alg":"HS256","kid":"hs","alg":"HS256"}',
                   b'{"alg":"HS256","kid":"hs"} trailing', b"",
                   b'{"alg":"none","kid":"hs"}', b'{"alg":"RS256","kid":"hs"}',
                   b'{"alg":"HS256","kid":"rs"}', b'{"alg":"HS512","kid":"h5"}',
                   b'{"alg":"ES256","kid":"es"}', b'{"alg":"HS256","kid":"zz"}',
                   b'{"alg":"HS256","kid":""}', b'{"alg":"HS256","kid":7}',
                   b'{"alg":"HS256","jku":"https://x","kid":"hs"}']
    for i, h in enumerate(bad_headers):
        out["hdr_%02d" % i] = b"\x02" + h + b"\n" + js(good)
        out["raw_hdr_%02d" % i] = b"\x00" + tok(HS, h, good)
    # well-formed RS256 / ES256 tokens, wrong signatures of the right size
    out["raw_rs256"] = b"\x00" + tok(HS, {"alg": "RS256", "kid": "rs"}, good,
                                     b64u(b"\x01" * 256))
    out["raw_es256"] = b"\x00" + tok(HS, {"alg": "ES256", "kid": "es"}, good,
                                     b64u(b"\x01" * 64))
    out["raw_es256_short"] = b"\x00" + tok(HS, {"alg": "ES256", "kid": "es"},
                                           good, b64u(b"\x01" * 63))
    for name, t in [("two_parts", b"a.b"), ("four_parts", b"a.b.c.d"),
                    ("dots", b".."), ("bad_b64", b"a$b!.eyJ9.abc"),
                    ("percent", b"%%%%.%%%%.%%%%"), ("empty", b"")]:
        out["raw_" + name] = b"\x00" + t
    for name, sub in [("plain", b"alice"), ("empty", b""),
                      ("long", b"x" * 300), ("quote", b'a"b\\c'),
                      ("utf8", "\u00e9l\u00e8ve".encode())]:
        out["issue_" + name] = b"\x04" + sub
        out["issue_alt_" + name] = b"\x0c" + sub
    return out


def c_strings(name):
    """The string literals of tests/unit/NAME (escapes decoded, adjacent
    literals joined): the unit tests' vectors, as seeds."""
    import re
    text = open(os.path.join(HERE, "..", "unit", name)).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lit = r'"((?:[^"\\\n]|\\.)*)"'
    out = []
    for m in re.finditer(r'(?:%s\s*)+' % lit, text):
        parts = re.findall(lit, m.group(0))
        raw = "".join(parts)
        b = raw.encode("latin-1", "backslashreplace").decode(
            "unicode_escape").encode("latin-1", "replace")
        if b not in out and b"%" not in b[:1]:
            out.append(b)
    return out


def lines_corpus(name, extra=()):
    """One seed per unit-test string, plus a few multi-line seeds."""
    vecs = c_strings(name)
    out = {}
    for i, v in enumerate(vecs):
        out["unit_%03d" % i] = v
    for i in range(0, len(vecs), 6):
        out["lines_%03d" % i] = b"\n".join(vecs[i:i + 6])
    for i, v in enumerate(extra):
        out["extra_%02d" % i] = v
    return out


write("corpus_resp", resp_corpus())
write("corpus_username", username_corpus())
write("corpus_jwt", jwt_corpus())
def peer_corpus():
    """fuzz_peer: addresses, and each CIDR of test_peer.c as an allow and a
    deny rule followed by addresses, exported ('~')."""
    vecs = [v for v in c_strings("test_peer.c") if len(v) < 80]
    out = lines_corpus("test_peer.c")
    cidrs = [v for v in vecs if b"/" in v]
    addrs = [v for v in vecs if b"/" not in v and b" " not in v]
    for i, c in enumerate(cidrs):
        out["allow_%03d" % i] = (b"~+" + c + b"\n" +
                                 b"\n".join(addrs[i % 7::7][:8]))
        out["deny_%03d" % i] = (b"-" + c + b"\n!\n" +
                                b"\n".join(addrs[i % 5::5][:8]))
    out["export_empty"] = b"~127.0.0.1\n8.8.8.8\n::ffff:10.0.0.1\n64:ff9b::a00:1"
    out["export_default_deny"] = b"~!\n+8.8.8.0/24\n8.8.8.8\n8.8.4.4"
    out["export_mapped"] = (b"~+::ffff:10.0.0.0/104\n-10.0.0.0/16\n"
                            b"::ffff:10.0.0.1\n10.1.0.1\n2002:a00:1::1")
    return out


def config_corpus():
    """fuzz_config: the texts of tests/unit/test_config.c (adjacent
    literals joined), the shipped example, and realm sections for the
    builders."""
    out = {}
    for i, v in enumerate(c_strings("test_config.c")):
        if b"\n" in v or b"=" in v or v.startswith(b"["):
            out["unit_%03d" % i] = v
    with open(os.path.join(HERE, "..", "..", "coturn-plugin",
                           "turnpolicyd.conf.example"), "rb") as f:
        out["turnpolicyd_example"] = f.read()
    out["realm_builders"] = (
        b"jwt_issuer = https://issuer.example\njwt_audience = turn\n"
        b"jwt_leeway = 30\njwt_realm_claim = tenant\n"
        b"[realm example.org]\ndefault_ttl = 600\nmax_ttl = 3600\n"
        b"clock_skew = 30\n"
        b"peer_allow = 10.1.0.0/16 fd00::/8\npeer_deny = 8.8.8.8 2001:db8::/32\n"
        b"peer_default = deny\n"
        b"hosts = edge.skype.com *.communication.azure.com p.example.com:*/api\n"
        b"[realm b.example]\npeer_default = sideways\nhosts = *.com\n"
        b"max_ttl = -5\n")
    out["quoted"] = (b'a = "x \\" y"\nb = "\\\\"\nc = "unterminated\n')
    out["dup_key"] = b"a = 1\na = 2\n"
    out["dup_section"] = b"[s]\n[s]\n"
    out["crlf"] = b"a = 1\r\n[realm x.org]\r\nhosts = a.com\r\n"
    return out


def fnv(realm, name):
    h = (2166136261 ^ realm) & 0xffffffff
    h = (h * 16777619) & 0xffffffff
    for c in name:
        h = ((h ^ c) * 16777619) & 0xffffffff
    return h


def base_file(realms, users, revoked, seq=42, xip=b"{}"):
    """A base as store_base.c writes it: header (112 bytes) at 0, entries
    from 256 (8-aligned), slots per table (uint32 offset / 8), realm
    names, their byte sums, the xip text.  users: (realm index, id,
    active, cidr or None); revoked: (realm index, username)."""
    data = bytearray(256)

    def align(n):
        while len(data) % n:
            data.append(0)

    def table(entries, name_off):
        cap = 16
        while cap < 2 * len(entries):
            cap *= 2
        slots = [0] * cap
        for realm, name, blob in entries:
            align(8)
            at = len(data)
            data.extend(blob)
            j = fnv(realm, name) & (cap - 1)
            while slots[j]:
                j = (j + 1) & (cap - 1)
            slots[j] = at // 8
        return cap, slots

    ue = []
    for realm, uid, active, cidr in users:
        blob = struct.pack("<IBBBBqqqQ", realm, active, cidr is not None,
                           cidr[1] if cidr else 0, 0, 0, -1, -1, 1000)
        blob += uid + b"\0"
        if cidr is not None:
            while len(blob) % 4:
                blob += b"\0"
            blob += struct.pack("<i16s", 2, cidr[0])
        ue.append((realm, uid, blob))
    re_ = [(realm, name, struct.pack("<IB", realm, 0) + name + b"\0")
           for realm, name in revoked]
    ucap, uslots = table(ue, 40)
    rcap, rslots = table(re_, 5)
    align(8)
    uoff = len(data)
    data.extend(struct.pack("<%dI" % ucap, *uslots))
    align(8)
    roff = len(data)
    data.extend(struct.pack("<%dI" % rcap, *rslots))
    names_off = len(data)
    for r in realms:
        data.extend(r + b"\0")
    align(8)
    used_off = len(data)
    for _ in realms:
        data.extend(struct.pack("<Q", 5000))
    xip_off = len(data)
    data.extend(xip + b"\0")
    hdr = struct.pack("<8sQqqQQQQQQQQQQ", b"tpbase1\0", len(data), 1 << 60,
                      seq, xip_off, len(realms), names_off, used_off,
                      ucap - 1, len(users), uoff, rcap - 1, len(revoked),
                      roff)
    data[0:len(hdr)] = hdr
    return bytes(data)


def base_corpus():
    return {
        "empty": base_file([b"a.test"], [], []),
        "users": base_file(
            [b"a.test", b"b.test"],
            [(0, b"alice", 1, None), (0, b"bob", 0, None),
             (1, b"alice", 1, (bytes([10, 0, 0, 0]) + bytes(12), 8)),
             (1, b"x" * 64, 1, None)],
            [(0, b"4000000000:alice:k1:1700000000"), (1, b"u")],
            xip=b"{7,9}"),
    }


write("corpus_config", config_corpus())
write("corpus_base", base_corpus())
write("corpus_peer", peer_corpus())
write("corpus_host", lines_corpus("test_host.c", [
    b"a.example.com\na.example.com",
    b"*.example.com\nx.example.com\nexample.com",
    b"a.example.com:8443/api\na.example.com:8443/api/x\na.example.com/api",
    b"EDGE.skype.com.\nedge.skype.com",
]))
