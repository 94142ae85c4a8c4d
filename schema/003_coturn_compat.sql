-- 003_coturn_compat.sql - views for a stock coturn without the sidecar.
--
-- coturn 4.6.1 with `psql-userdb` + `use-auth-secret` reads its REST-API
-- secrets, peer ranges, origin->realm map and realm options from plain
-- tables (src/apps/relay/dbdrivers/dbd_pgsql.c, unqualified names).  The
-- views in schema turnpolicy_coturn present the same policy under those
-- names and columns; connect coturn as a member of turnpolicy_coturn with
-- search_path=turnpolicy_coturn (schema/README.md).  Compat mode is weaker
-- than turnpolicyd: see schema/README.md "Compat mode".

---------------------------------------------------------------------------
-- Built-in default deny, in coturn 4.6.1 range form
---------------------------------------------------------------------------

-- What `turnpolicy coturn-peers` prints for a realm without rules:
--   kind 'default'   peer_default = allow (the built-in deny ranges and
--                    their IPv4-embedding IPv6 images)
--   kind 'deny-all'  peer_default = deny (everything)
-- ord keeps the CLI's order.  Seeded here; a later migration replaces the
-- rows if the library's list changes (tests/integration/schema.sh compares
-- them with the CLI).
CREATE TABLE turnpolicy.builtin_denied_peer (
    kind     text NOT NULL CONSTRAINT builtin_denied_peer_kind_valid
             CHECK (kind IN ('default', 'deny-all')),
    ord      integer NOT NULL,
    ip_range text NOT NULL CONSTRAINT builtin_denied_peer_range_format
             CHECK (ip_range ~ '^[0-9a-f:.]+(-[0-9a-f:.]+)?$'),
    PRIMARY KEY (kind, ord),
    UNIQUE (kind, ip_range)
);
COMMENT ON TABLE turnpolicy.builtin_denied_peer IS
    'the library''s built-in peer deny exported as coturn 4.6.1 ranges (turnpolicy coturn-peers); migration-owned';

INSERT INTO turnpolicy.builtin_denied_peer (kind, ord, ip_range) VALUES
    ('default', 1, '0.0.0.0-0.255.255.255'),
    ('default', 2, '10.0.0.0-10.255.255.255'),
    ('default', 3, '100.64.0.0-100.127.255.255'),
    ('default', 4, '127.0.0.0-127.255.255.255'),
    ('default', 5, '169.254.0.0-169.254.255.255'),
    ('default', 6, '172.16.0.0-172.31.255.255'),
    ('default', 7, '192.0.0.0-192.0.0.255'),
    ('default', 8, '192.0.2.0-192.0.2.255'),
    ('default', 9, '192.88.99.0-192.88.99.255'),
    ('default', 10, '192.168.0.0-192.168.255.255'),
    ('default', 11, '198.18.0.0-198.19.255.255'),
    ('default', 12, '198.51.100.0-198.51.100.255'),
    ('default', 13, '203.0.113.0-203.0.113.255'),
    ('default', 14, '224.0.0.0-255.255.255.255'),
    ('default', 15, '::1'),
    ('default', 16, '::2-::3'),
    ('default', 17, '::4-::7'),
    ('default', 18, '::8-::f'),
    ('default', 19, '::10-::1f'),
    ('default', 20, '::20-::3f'),
    ('default', 21, '::40-::7f'),
    ('default', 22, '::80-::ff'),
    ('default', 23, '::100-::1ff'),
    ('default', 24, '::200-::3ff'),
    ('default', 25, '::400-::7ff'),
    ('default', 26, '::800-::fff'),
    ('default', 27, '::1000-::1fff'),
    ('default', 28, '::2000-::3fff'),
    ('default', 29, '::4000-::7fff'),
    ('default', 30, '::8000-::ffff'),
    ('default', 31, '::0.1.0.0-::0.1.255.255'),
    ('default', 32, '::0.2.0.0-::0.3.255.255'),
    ('default', 33, '::0.4.0.0-::0.7.255.255'),
    ('default', 34, '::0.8.0.0-::0.15.255.255'),
    ('default', 35, '::0.16.0.0-::0.31.255.255'),
    ('default', 36, '::0.32.0.0-::0.63.255.255'),
    ('default', 37, '::0.64.0.0-::0.127.255.255'),
    ('default', 38, '::0.128.0.0-::0.255.255.255'),
    ('default', 39, '::10.0.0.0-::10.255.255.255'),
    ('default', 40, '::100.64.0.0-::100.127.255.255'),
    ('default', 41, '::127.0.0.0-::127.255.255.255'),
    ('default', 42, '::169.254.0.0-::169.254.255.255'),
    ('default', 43, '::172.16.0.0-::172.31.255.255'),
    ('default', 44, '::192.0.0.0-::192.0.0.255'),
    ('default', 45, '::192.0.2.0-::192.0.2.255'),
    ('default', 46, '::192.88.99.0-::192.88.99.255'),
    ('default', 47, '::192.168.0.0-::192.168.255.255'),
    ('default', 48, '::198.18.0.0-::198.19.255.255'),
    ('default', 49, '::198.51.100.0-::198.51.100.255'),
    ('default', 50, '::203.0.113.0-::203.0.113.255'),
    ('default', 51, '::224.0.0.0-::255.255.255.255'),
    ('default', 52, '::ffff:0.0.0.0-::ffff:0.255.255.255'),
    ('default', 53, '::ffff:10.0.0.0-::ffff:10.255.255.255'),
    ('default', 54, '::ffff:100.64.0.0-::ffff:100.127.255.255'),
    ('default', 55, '::ffff:127.0.0.0-::ffff:127.255.255.255'),
    ('default', 56, '::ffff:169.254.0.0-::ffff:169.254.255.255'),
    ('default', 57, '::ffff:172.16.0.0-::ffff:172.31.255.255'),
    ('default', 58, '::ffff:192.0.0.0-::ffff:192.0.0.255'),
    ('default', 59, '::ffff:192.0.2.0-::ffff:192.0.2.255'),
    ('default', 60, '::ffff:192.88.99.0-::ffff:192.88.99.255'),
    ('default', 61, '::ffff:192.168.0.0-::ffff:192.168.255.255'),
    ('default', 62, '::ffff:198.18.0.0-::ffff:198.19.255.255'),
    ('default', 63, '::ffff:198.51.100.0-::ffff:198.51.100.255'),
    ('default', 64, '::ffff:203.0.113.0-::ffff:203.0.113.255'),
    ('default', 65, '::ffff:224.0.0.0-::ffff:255.255.255.255'),
    ('default', 66, '64:ff9b::-64:ff9b::ff:ffff'),
    ('default', 67, '64:ff9b::a00:0-64:ff9b::aff:ffff'),
    ('default', 68, '64:ff9b::6440:0-64:ff9b::647f:ffff'),
    ('default', 69, '64:ff9b::7f00:0-64:ff9b::7fff:ffff'),
    ('default', 70, '64:ff9b::a9fe:0-64:ff9b::a9fe:ffff'),
    ('default', 71, '64:ff9b::ac10:0-64:ff9b::ac1f:ffff'),
    ('default', 72, '64:ff9b::c000:0-64:ff9b::c000:ff'),
    ('default', 73, '64:ff9b::c000:200-64:ff9b::c000:2ff'),
    ('default', 74, '64:ff9b::c058:6300-64:ff9b::c058:63ff'),
    ('default', 75, '64:ff9b::c0a8:0-64:ff9b::c0a8:ffff'),
    ('default', 76, '64:ff9b::c612:0-64:ff9b::c613:ffff'),
    ('default', 77, '64:ff9b::c633:6400-64:ff9b::c633:64ff'),
    ('default', 78, '64:ff9b::cb00:7100-64:ff9b::cb00:71ff'),
    ('default', 79, '64:ff9b::e000:0-64:ff9b::ffff:ffff'),
    ('default', 80, '100::-100::ffff:ffff:ffff:ffff'),
    ('default', 81, '2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 82, '2002::-2002:ff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 83, '2002:a00::-2002:aff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 84, '2002:6440::-2002:647f:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 85, '2002:7f00::-2002:7fff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 86, '2002:a9fe::-2002:a9fe:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 87, '2002:ac10::-2002:ac1f:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 88, '2002:c000::-2002:c000:ff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 89, '2002:c000:200::-2002:c000:2ff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 90, '2002:c058:6300::-2002:c058:63ff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 91, '2002:c0a8::-2002:c0a8:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 92, '2002:c612::-2002:c613:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 93, '2002:c633:6400::-2002:c633:64ff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 94, '2002:cb00:7100::-2002:cb00:71ff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 95, '2002:e000::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 96, 'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 97, 'fe80::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('default', 98, 'ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 1, '0.0.0.0-255.255.255.255'),
    ('deny-all', 2, '::1'),
    ('deny-all', 3, '::2-::3'),
    ('deny-all', 4, '::4-::7'),
    ('deny-all', 5, '::8-::f'),
    ('deny-all', 6, '::10-::1f'),
    ('deny-all', 7, '::20-::3f'),
    ('deny-all', 8, '::40-::7f'),
    ('deny-all', 9, '::80-::ff'),
    ('deny-all', 10, '::100-::1ff'),
    ('deny-all', 11, '::200-::3ff'),
    ('deny-all', 12, '::400-::7ff'),
    ('deny-all', 13, '::800-::fff'),
    ('deny-all', 14, '::1000-::1fff'),
    ('deny-all', 15, '::2000-::3fff'),
    ('deny-all', 16, '::4000-::7fff'),
    ('deny-all', 17, '::8000-::ffff'),
    ('deny-all', 18, '::0.1.0.0-::0.1.255.255'),
    ('deny-all', 19, '::0.2.0.0-::0.3.255.255'),
    ('deny-all', 20, '::0.4.0.0-::0.7.255.255'),
    ('deny-all', 21, '::0.8.0.0-::0.15.255.255'),
    ('deny-all', 22, '::0.16.0.0-::0.31.255.255'),
    ('deny-all', 23, '::0.32.0.0-::0.63.255.255'),
    ('deny-all', 24, '::0.64.0.0-::0.127.255.255'),
    ('deny-all', 25, '::0.128.0.0-::0.255.255.255'),
    ('deny-all', 26, '::1.0.0.0-::1.255.255.255'),
    ('deny-all', 27, '::2.0.0.0-::3.255.255.255'),
    ('deny-all', 28, '::4.0.0.0-::7.255.255.255'),
    ('deny-all', 29, '::8.0.0.0-::15.255.255.255'),
    ('deny-all', 30, '::16.0.0.0-::31.255.255.255'),
    ('deny-all', 31, '::32.0.0.0-::63.255.255.255'),
    ('deny-all', 32, '::64.0.0.0-::127.255.255.255'),
    ('deny-all', 33, '::128.0.0.0-::255.255.255.255'),
    ('deny-all', 34, '::1:0:0-::1:ffff:ffff'),
    ('deny-all', 35, '::2:0:0-::3:ffff:ffff'),
    ('deny-all', 36, '::4:0:0-::7:ffff:ffff'),
    ('deny-all', 37, '::8:0:0-::f:ffff:ffff'),
    ('deny-all', 38, '::10:0:0-::1f:ffff:ffff'),
    ('deny-all', 39, '::20:0:0-::3f:ffff:ffff'),
    ('deny-all', 40, '::40:0:0-::7f:ffff:ffff'),
    ('deny-all', 41, '::80:0:0-::ff:ffff:ffff'),
    ('deny-all', 42, '::100:0:0-::1ff:ffff:ffff'),
    ('deny-all', 43, '::200:0:0-::3ff:ffff:ffff'),
    ('deny-all', 44, '::400:0:0-::7ff:ffff:ffff'),
    ('deny-all', 45, '::800:0:0-::fff:ffff:ffff'),
    ('deny-all', 46, '::1000:0:0-::1fff:ffff:ffff'),
    ('deny-all', 47, '::2000:0:0-::3fff:ffff:ffff'),
    ('deny-all', 48, '::4000:0:0-::7fff:ffff:ffff'),
    ('deny-all', 49, '::8000:0:0-::ffff:255.255.255.255'),
    ('deny-all', 50, '::1:0:0:0-::1:ffff:ffff:ffff'),
    ('deny-all', 51, '::2:0:0:0-::3:ffff:ffff:ffff'),
    ('deny-all', 52, '::4:0:0:0-::7:ffff:ffff:ffff'),
    ('deny-all', 53, '::8:0:0:0-::f:ffff:ffff:ffff'),
    ('deny-all', 54, '::10:0:0:0-::1f:ffff:ffff:ffff'),
    ('deny-all', 55, '::20:0:0:0-::3f:ffff:ffff:ffff'),
    ('deny-all', 56, '::40:0:0:0-::7f:ffff:ffff:ffff'),
    ('deny-all', 57, '::80:0:0:0-::ff:ffff:ffff:ffff'),
    ('deny-all', 58, '::100:0:0:0-::1ff:ffff:ffff:ffff'),
    ('deny-all', 59, '::200:0:0:0-::3ff:ffff:ffff:ffff'),
    ('deny-all', 60, '::400:0:0:0-::7ff:ffff:ffff:ffff'),
    ('deny-all', 61, '::800:0:0:0-::fff:ffff:ffff:ffff'),
    ('deny-all', 62, '::1000:0:0:0-::1fff:ffff:ffff:ffff'),
    ('deny-all', 63, '::2000:0:0:0-::3fff:ffff:ffff:ffff'),
    ('deny-all', 64, '::4000:0:0:0-::7fff:ffff:ffff:ffff'),
    ('deny-all', 65, '::8000:0:0:0-::ffff:ffff:ffff:ffff'),
    ('deny-all', 66, '0:0:0:1::-::1:ffff:ffff:ffff:ffff'),
    ('deny-all', 67, '0:0:0:2::-::3:ffff:ffff:ffff:ffff'),
    ('deny-all', 68, '0:0:0:4::-::7:ffff:ffff:ffff:ffff'),
    ('deny-all', 69, '0:0:0:8::-::f:ffff:ffff:ffff:ffff'),
    ('deny-all', 70, '0:0:0:10::-::1f:ffff:ffff:ffff:ffff'),
    ('deny-all', 71, '0:0:0:20::-::3f:ffff:ffff:ffff:ffff'),
    ('deny-all', 72, '0:0:0:40::-::7f:ffff:ffff:ffff:ffff'),
    ('deny-all', 73, '0:0:0:80::-::ff:ffff:ffff:ffff:ffff'),
    ('deny-all', 74, '0:0:0:100::-::1ff:ffff:ffff:ffff:ffff'),
    ('deny-all', 75, '0:0:0:200::-::3ff:ffff:ffff:ffff:ffff'),
    ('deny-all', 76, '0:0:0:400::-::7ff:ffff:ffff:ffff:ffff'),
    ('deny-all', 77, '0:0:0:800::-::fff:ffff:ffff:ffff:ffff'),
    ('deny-all', 78, '0:0:0:1000::-::1fff:ffff:ffff:ffff:ffff'),
    ('deny-all', 79, '0:0:0:2000::-::3fff:ffff:ffff:ffff:ffff'),
    ('deny-all', 80, '0:0:0:4000::-::7fff:ffff:ffff:ffff:ffff'),
    ('deny-all', 81, '0:0:0:8000::-::ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 82, '0:0:1::-::1:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 83, '0:0:2::-::3:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 84, '0:0:4::-::7:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 85, '0:0:8::-::f:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 86, '0:0:10::-::1f:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 87, '0:0:20::-::3f:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 88, '0:0:40::-::7f:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 89, '0:0:80::-::ff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 90, '0:0:100::-::1ff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 91, '0:0:200::-::3ff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 92, '0:0:400::-::7ff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 93, '0:0:800::-::fff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 94, '0:0:1000::-::1fff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 95, '0:0:2000::-::3fff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 96, '0:0:4000::-::7fff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 97, '0:0:8000::-::ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 98, '0:1::-0:1:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 99, '0:2::-0:3:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 100, '0:4::-0:7:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 101, '0:8::-0:f:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 102, '0:10::-0:1f:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 103, '0:20::-0:3f:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 104, '0:40::-0:7f:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 105, '0:80::-0:ff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 106, '0:100::-0:1ff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 107, '0:200::-0:3ff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 108, '0:400::-0:7ff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 109, '0:800::-0:fff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 110, '0:1000::-0:1fff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 111, '0:2000::-0:3fff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 112, '0:4000::-0:7fff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 113, '0:8000::-0:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 114, '1::-1:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 115, '2::-3:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 116, '4::-7:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 117, '8::-f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 118, '10::-1f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 119, '20::-3f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 120, '40::-7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 121, '80::-ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 122, '100::-1ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 123, '200::-3ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 124, '400::-7ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 125, '800::-fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 126, '1000::-1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 127, '2000::-3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 128, '4000::-7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    ('deny-all', 129, '8000::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- coturn_ranges(net): a CIDR as coturn 4.6.1 range strings
-- ("a.b.c.d-e.f.g.h", or the bare address for a /32 or /128) that coturn
-- compares correctly: its IPv6 range test is a byte-wise box, exact only
-- for prefixes, and a range starting at "::" (or the single "0.0.0.0")
-- would match every address, so ::/n is emitted as the prefixes covering
-- it without "::", and 0.0.0.0/32 and ::/128 (refused by coturn anyway)
-- as nothing.  Caller: the compat views (turnpolicy_coturn).
CREATE FUNCTION turnpolicy.coturn_ranges(net cidr) RETURNS SETOF text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    k integer;
    p cidr;
BEGIN
    IF family(net) = 4 THEN
        IF net = '0.0.0.0/32'::cidr THEN
            RETURN;
        END IF;
        RETURN NEXT CASE WHEN masklen(net) = 32 THEN host(net)
                         ELSE host(net) || '-' || host(broadcast(net)) END;
        RETURN;
    END IF;
    IF host(net) <> '::' THEN
        RETURN NEXT CASE WHEN masklen(net) = 128 THEN host(net)
                         ELSE host(net) || '-' || host(broadcast(net)) END;
        RETURN;
    END IF;
    -- ::/n minus "::" = the union of (1 << k)/(128 - k), k = 0 .. 127 - n
    FOR k IN 0 .. 127 - masklen(net) LOOP
        p := (array_to_string(ARRAY(
                  SELECT CASE WHEN g = 7 - k / 16 THEN to_hex(1 << (k % 16)) ELSE '0' END
                    FROM generate_series(0, 7) AS g ORDER BY g), ':')
              || '/' || (128 - k))::cidr;
        RETURN NEXT CASE WHEN masklen(p) = 128 THEN host(p)
                         ELSE host(p) || '-' || host(broadcast(p)) END;
    END LOOP;
END
$$;

-- _compat_text(secret): the secret as text when coturn can use it as its
-- REST-API secret byte for byte: 1..256 bytes of printable ASCII without
-- space (0x21..0x7e); else NULL (the secret is left out of turn_secret).
-- Caller: the compat views.
CREATE FUNCTION turnpolicy._compat_text(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN octet_length(b) BETWEEN 1 AND 256
             AND NOT EXISTS (SELECT 1 FROM generate_series(0, octet_length(b) - 1) AS i
                              WHERE get_byte(b, i) NOT BETWEEN 33 AND 126)
        THEN convert_from(b, 'UTF8')
    END
$$;

ALTER FUNCTION turnpolicy.coturn_ranges(cidr) SET search_path = pg_catalog, turnpolicy;
ALTER FUNCTION turnpolicy._compat_text(bytea) SET search_path = pg_catalog, turnpolicy;

---------------------------------------------------------------------------
-- Role and schema
---------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'turnpolicy_coturn') THEN
        BEGIN
            CREATE ROLE turnpolicy_coturn NOLOGIN;
            COMMENT ON ROLE turnpolicy_coturn IS
                'turnpolicy: stock coturn psql-userdb in compat mode; SELECT on schema turnpolicy_coturn only';
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END;
    END IF;
END
$roles$;

CREATE SCHEMA turnpolicy_coturn;
REVOKE ALL ON SCHEMA turnpolicy_coturn FROM PUBLIC;
COMMENT ON SCHEMA turnpolicy_coturn IS
    'turnpolicy: coturn 4.6.1 psql-userdb tables as read-only views of the policy (compat mode)';

---------------------------------------------------------------------------
-- Views (names and columns of coturn's turndb/schema.sql)
---------------------------------------------------------------------------

-- REST-API secrets coturn tries for a realm: signing and verify-only
-- secrets plus the imported legacy secret, when printable; nothing for a
-- killed realm (so coturn refuses every new allocation there).
CREATE VIEW turnpolicy_coturn.turn_secret AS
    SELECT s.realm, turnpolicy._compat_text(s.secret) AS value
      FROM turnpolicy.secrets AS s
      JOIN turnpolicy.realms AS r ON r.name = s.realm
     WHERE s.state IN ('signing', 'verify-only') AND NOT r.killed
       AND turnpolicy._compat_text(s.secret) IS NOT NULL
    UNION ALL
    SELECT l.realm, turnpolicy._compat_text(l.secret)
      FROM turnpolicy.legacy_secrets AS l
      JOIN turnpolicy.realms AS r ON r.name = l.realm
     WHERE NOT r.killed AND turnpolicy._compat_text(l.secret) IS NOT NULL;

-- Allow rules, except those overlapping a deny rule of the same realm:
-- coturn lets an allowed range win over any denied one, so such an allow
-- is left out (fail closed: the deny and the built-in deny then apply).
CREATE VIEW turnpolicy_coturn.allowed_peer_ip AS
    SELECT p.realm, x.ip_range
      FROM turnpolicy.peer_rules AS p
     CROSS JOIN LATERAL turnpolicy.coturn_ranges(p.net) AS x(ip_range)
     WHERE p.action = 'allow'
       AND NOT EXISTS (SELECT 1 FROM turnpolicy.peer_rules AS d
                        WHERE d.realm = p.realm AND d.action = 'deny' AND d.net && p.net);

-- The built-in default deny for every realm (realm ''), everything for
-- realms with peer_default = 'deny', and each realm's deny rules.
CREATE VIEW turnpolicy_coturn.denied_peer_ip AS
    SELECT ''::text AS realm, b.ip_range
      FROM turnpolicy.builtin_denied_peer AS b
     WHERE b.kind = 'default'
    UNION ALL
    SELECT r.name, b.ip_range
      FROM turnpolicy.realms AS r
      JOIN turnpolicy.builtin_denied_peer AS b ON b.kind = 'deny-all'
     WHERE r.peer_default = 'deny'
    UNION ALL
    SELECT p.realm, x.ip_range
      FROM turnpolicy.peer_rules AS p
     CROSS JOIN LATERAL turnpolicy.coturn_ranges(p.net) AS x(ip_range)
     WHERE p.action = 'deny';

-- Web origin -> realm, from realms.allowed_origins.  coturn maps an origin
-- to one realm: when several realms list it, the oldest realm wins.
CREATE VIEW turnpolicy_coturn.turn_origin_to_realm AS
    SELECT DISTINCT ON (o.origin) o.origin, r.name AS realm
      FROM turnpolicy.realms AS r
     CROSS JOIN LATERAL unnest(r.allowed_origins) AS o(origin)
     ORDER BY o.origin, r.created_at, r.name;

-- coturn's per-realm options, from the realm's limits (NULL = not set,
-- coturn's global value applies).
CREATE VIEW turnpolicy_coturn.turn_realm_option AS
    SELECT r.name AS realm, v.opt, v.value
      FROM turnpolicy.realms AS r
     CROSS JOIN LATERAL (VALUES ('max-bps', r.max_bps::text),
                                ('total-quota', r.total_quota::text),
                                ('user-quota', r.user_quota::text)) AS v(opt, value)
     WHERE v.value IS NOT NULL;

-- Always empty: compat mode has no long-term users, admin users or OAuth keys.
CREATE VIEW turnpolicy_coturn.turnusers_lt AS
    SELECT NULL::varchar(127) AS realm, NULL::varchar(512) AS name,
           NULL::char(128) AS hmackey
     WHERE false;

CREATE VIEW turnpolicy_coturn.admin_user AS
    SELECT NULL::varchar(32) AS name, NULL::varchar(127) AS realm,
           NULL::varchar(127) AS password
     WHERE false;

CREATE VIEW turnpolicy_coturn.oauth_key AS
    SELECT NULL::varchar(128) AS kid, NULL::varchar(256) AS ikm_key,
           NULL::bigint AS "timestamp", NULL::integer AS lifetime,
           NULL::varchar(64) AS as_rs_alg, NULL::varchar(127) AS realm
     WHERE false;

---------------------------------------------------------------------------
-- Privileges
---------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA turnpolicy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA turnpolicy_coturn FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA turnpolicy FROM PUBLIC;

GRANT SELECT ON turnpolicy.builtin_denied_peer TO turnpolicy_admin, turnpolicy_reader;

GRANT USAGE ON SCHEMA turnpolicy_coturn TO turnpolicy_coturn;
GRANT SELECT ON ALL TABLES IN SCHEMA turnpolicy_coturn TO turnpolicy_coturn;
-- Functions in a view run with the querying role's EXECUTE privilege.
GRANT EXECUTE ON FUNCTION turnpolicy.coturn_ranges(cidr), turnpolicy._compat_text(bytea)
    TO turnpolicy_coturn;
