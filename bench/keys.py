#!/usr/bin/env python3
"""The benchmark's API-key sets: created through DataHub's admin API, then handed to the anchors.

The gateway generates secrets itself and stores only their keyed hash, so the key sets are made
by asking it, as a client would: POST /api/v1/keys with the admin key, over a few keep-alive
connections. The anchors (HAProxy and nginx) get the very same secrets in the shape their
configurations read. Standard library only.

  keys.py create --url URL --admin-key-file F --dir DIR --set NAME:COUNT:PER_MIN:PER_HOUR ...
      creates the keys and writes DIR/NAME.txt (one secret a line) and DIR/NAME.limits
  keys.py local --dir DIR --set ... [--seed N]
      the same files with well-formed secrets made here, for a run without the gateway
  keys.py anchors --dir DIR --tier NAME:TIER ...
      writes, from DIR/NAME.txt and DIR/NAME.limits, the anchors' key files:
        haproxy_min.map / haproxy_hour.map   SHA-256 hex (upper case) -> per-minute / per-hour
        nginx_keys.map                       plaintext secret -> tier
        nginx_canon.map                      plaintext secret -> itself (exact-match check)
  keys.py unknown [--seed N]
      prints one well-formed secret that no gateway issued (a 401 that needs a lookup)
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import secrets
import sys
import threading
import time
import urllib.parse
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_CHARS = 32
CHECKSUM_CHARS = 6


def checksum(body):
    """The gateway's checksum: CRC-32 of prefix and random part, as 6 base62 digits."""
    v = zlib.crc32(body.encode())
    out = []
    for _ in range(CHECKSUM_CHARS):
        out.append(BASE62[v % 62])
        v //= 62
    return "".join(reversed(out))


def make_secret(rng):
    body = "dh_live_" + "".join(rng.choice(BASE62) for _ in range(RANDOM_CHARS))
    return body + checksum(body)


def parse_set(text):
    try:
        name, count, per_min, per_hour = text.split(":")
        return name, int(count), int(per_min), int(per_hour)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set wants NAME:COUNT:PER_MIN:PER_HOUR, got {text!r}")


def write_set(directory, name, keys, per_min, per_hour):
    with open(os.path.join(directory, name + ".txt"), "w") as f:
        f.writelines(k + "\n" for k in keys)
    with open(os.path.join(directory, name + ".limits"), "w") as f:
        f.write(f"{per_min} {per_hour}\n")


class Creator:
    """Creates keys over one keep-alive connection per thread; the first error stops all."""

    def __init__(self, url, admin_key, prefix):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit(f"keys.py: --url must be http://host:port, got {url}")
        self.host, self.port = u.hostname, u.port or 80
        self.headers = {"Authorization": "Bearer " + admin_key,
                        "Content-Type": "application/json"}
        self.prefix = prefix
        self.error = None

    def create_range(self, name, first, last, per_min, per_hour, out):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            for i in range(first, last):
                if self.error:
                    return
                body = json.dumps({"name": f"{self.prefix}-{name}-{i}",
                                   "rate_limit": {"per_minute": per_min, "per_hour": per_hour}})
                for attempt in range(3):
                    try:
                        conn.request("POST", "/api/v1/keys", body, self.headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (ConnectionError, http.client.HTTPException, OSError):
                        # The gateway may close an idle keep-alive connection: reconnect.
                        conn.close()
                        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                        if attempt == 2:
                            raise
                        time.sleep(0.2)
                if resp.status != 201:
                    self.error = f"POST /api/v1/keys answered {resp.status}: {data[:300]!r}"
                    return
                out[i] = json.loads(data)["secret"]
        except Exception as e:  # reported once, by the main thread
            self.error = self.error or f"{type(e).__name__}: {e}"
        finally:
            conn.close()


def cmd_create(a):
    admin_key = open(a.admin_key_file).read().strip()
    creator = Creator(a.url, admin_key, a.name_prefix)
    os.makedirs(a.dir, exist_ok=True)
    for name, count, per_min, per_hour in a.set:
        started = time.monotonic()
        out = [None] * count
        threads = []
        step = (count + a.threads - 1) // a.threads
        for first in range(0, count, step):
            t = threading.Thread(target=creator.create_range,
                                 args=(name, first, min(count, first + step), per_min, per_hour, out))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        if creator.error:
            raise SystemExit(f"keys.py: creating set {name!r} failed: {creator.error}")
        write_set(a.dir, name, out, per_min, per_hour)
        took = time.monotonic() - started
        print(f"{name}: {count} keys ({per_min}/min, {per_hour}/h) created in {took:.1f} s "
              f"({count / took:,.0f} keys/s)", flush=True)


def cmd_local(a):
    rng = random.Random(a.seed) if a.seed is not None else secrets.SystemRandom()
    os.makedirs(a.dir, exist_ok=True)
    for name, count, per_min, per_hour in a.set:
        write_set(a.dir, name, [make_secret(rng) for _ in range(count)], per_min, per_hour)
        print(f"{name}: {count} keys ({per_min}/min, {per_hour}/h) made locally")


def cmd_anchors(a):
    p = lambda f: os.path.join(a.dir, f)
    with open(p("haproxy_min.map"), "w") as fm, open(p("haproxy_hour.map"), "w") as fh, \
            open(p("nginx_keys.map"), "w") as fn, open(p("nginx_canon.map"), "w") as fc:
        total = 0
        for spec in a.tier:
            name, tier = spec.split(":")
            per_min, per_hour = open(p(name + ".limits")).read().split()
            for line in open(p(name + ".txt")):
                k = line.strip()
                if not k:
                    continue
                h = hashlib.sha256(k.encode()).hexdigest().upper()
                fm.write(f"{h} {per_min}\n")
                fh.write(f"{h} {per_hour}\n")
                fn.write(f"{k} {tier};\n")
                fc.write(f"{k} {k};\n")
                total += 1
    print(f"anchor key files: {total} keys")


def cmd_unknown(a):
    rng = random.Random(a.seed) if a.seed is not None else secrets.SystemRandom()
    print(make_secret(rng))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--url", required=True)
    c.add_argument("--admin-key-file", required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--set", type=parse_set, action="append", required=True)
    c.add_argument("--threads", type=int, default=4)
    c.add_argument("--name-prefix", default="bench")
    l = sub.add_parser("local")
    l.add_argument("--dir", required=True)
    l.add_argument("--set", type=parse_set, action="append", required=True)
    l.add_argument("--seed", type=int)
    n = sub.add_parser("anchors")
    n.add_argument("--dir", required=True)
    n.add_argument("--tier", action="append", required=True)
    u = sub.add_parser("unknown")
    u.add_argument("--seed", type=int)
    a = ap.parse_args()
    {"create": cmd_create, "local": cmd_local, "anchors": cmd_anchors, "unknown": cmd_unknown}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
