#!/usr/bin/env python3
"""Summarises callgrind_annotate's output for bench/profile.sh, by area of the gateway.

usage: profile_report.py INCLUSIVE.txt EXCLUSIVE.txt REQUESTS

Each function is put in one area by its name and object file. The first table adds up exclusive
(self) instruction counts per area, so the areas sum to the whole. The second lists the functions
with the most inclusive instructions (a caller includes its callees, so these overlap), each
labelled with its area; it shows which entry points the areas are reached through.
"""
import re
import sys

# First match wins, against the function's bare name (template arguments and parameters removed)
# and its object file, so `executor_function::complete<session::...>` counts as Asio.
AREAS = [
    ("logging/spdlog", r"spdlog|^fmt::|fmt::v\d|libfmt|datahub::core::log\b|datahub::core::log_|"
                       r"datahub::core::is_secret_field|datahub::core::::append_value|vfprintf"),
    ("metrics/prometheus", r"prometheus|datahub::core::metrics"),
    ("serialisation/JSON", r"nlohmann|json"),
    ("hashing/OpenSSL", r"libcrypto|libssl|OPENSSL|EVP_|HMAC|SHA256|sha256|hmac|CRYPTO_|ossl_"),
    ("PostgreSQL client (key refresh, usage, pool)", r"pqxx|libpq|datahub::persistence"),
    ("parsing/Beast", r"boost::beast|boost::intrusive"),
    ("actor messaging/CAF", r"caf::|libcaf"),
    ("upstream and socket I/O (Asio, syscall wrappers)",
     r"boost::asio|epoll|__libc_(recv|send|read|write)|\b(recv|send|read|write|writev|readv|"
     r"sendmsg|recvmsg|epoll_wait|__GI___(recv|send|read|write|writev|epoll))"),
    ("rate limiting, keys and ids", r"rate_limit|datahub::actors|api_key|datahub::core::(secrets|ids|"
                                    r"random|check_secret_format|hash_secret|new_id)"),
    ("gateway HTTP layer (session, router, proxy)", r"datahub::http::|datahub::app::"),
    ("memory (malloc/new)", r"malloc|free|calloc|realloc|operator new|operator delete|_int_|tcache|"
                            r"arena|sbrk|mmap|munmap"),
    ("strings and C library", r"mem(cpy|move|set|cmp|chr)|str(len|cmp|chr|ncmp|casecmp)|__memcpy|"
                              r"__memset|__strlen|__mem|basic_string|libc\.so|libstdc\+\+|"
                              r"char_traits|__strn?casecmp"),
    ("threads and locks", r"pthread|mutex|futex|atomic|condition_variable|__lll_"),
]
COMPILED = [(name, re.compile(rx)) for name, rx in AREAS]
LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(?:\*\s+)?(.+?)\s*$")


def bare(text):
    """`???:void ns::f<T>(args) const [obj]` -> `ns::f [obj]`."""
    text = re.sub(r"^[^:\s]*\?\?\?:|^\S+\.(?:cpp|hpp|h|c|cc|ipp):", "", text)
    obj = ""
    m = re.search(r"\s*\[([^\]]*)\]$", text)
    if m:
        obj, text = " [" + m.group(1).split("/")[-1] + "]", text[: m.start()]
    prev = None
    while prev != text:  # innermost groups first, until no <...> or (...) is left
        prev = text
        text = re.sub(r"<[^<>]*>", "", text)
        text = re.sub(r"\([^()]*\)", "", text)
    text = re.sub(r"\s+const$", "", text.strip())
    m = re.search(r"([\w:~]*operator\s*(?:new|delete)(?:\[\])?|\S+)$", text)
    return (m.group(1) if m else text) + obj


def area_of(text):
    name = bare(text)
    for area, rx in COMPILED:
        if rx.search(name):
            return area
    # A generic wrapper (std::function, mp11, a lambda): the area named first in its arguments.
    best = None
    for area, rx in COMPILED:
        m = rx.search(text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), area)
    return best[1] if best else "other (std containers, dynamic linker, ...)"


def parse(path):
    """(total, [(instructions, function text)]) from a callgrind_annotate report."""
    total, rows, in_table = None, [], False
    for line in open(path, errors="replace"):
        if total is None:
            m = re.match(r"^\s*([\d,]+)\s+(?:\(100\.0%\)\s+)?PROGRAM TOTALS", line)
            if m:
                total = int(m.group(1).replace(",", ""))
            continue
        if re.match(r"^\s*Ir\s", line) or "file:function" in line:
            in_table = True
            continue
        if not in_table:
            continue
        if line.startswith("--") or not line.strip():
            if rows:
                break
            continue
        m = LINE.match(line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), m.group(2)))
    if total is None:
        raise SystemExit(f"profile_report.py: no PROGRAM TOTALS in {path}")
    return total, rows


def short(fn, width=110):
    fn = re.sub(r"^[^:\s]*\?\?\?:", "", fn)
    fn = re.sub(r"\s+\[([^\]]*)\]$", lambda m: " [" + m.group(1).split("/")[-1] + "]", fn)
    return fn if len(fn) <= width else fn[: width - 1] + "…"


def main():
    inc_path, exc_path, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
    total, exc = parse(exc_path)
    _, inc = parse(inc_path)
    per_area = {}
    for ir, fn in exc:
        a = area_of(fn)
        per_area[a] = per_area.get(a, 0) + ir
    listed = sum(per_area.values())
    if total > listed:
        per_area["below the report's threshold"] = total - listed

    print(f"Instructions (callgrind Ir) for {requests:,} proxied requests: {total:,} in all, "
          f"{total / requests:,.0f} per request.")
    print()
    print("| area | share (self cost) | instructions per request |")
    print("|---|---:|---:|")
    for a, ir in sorted(per_area.items(), key=lambda kv: -kv[1]):
        print(f"| {a} | {ir / total * 100:.1f}% | {ir / requests:,.0f} |")
    print()
    print("Top inclusive functions (each includes what it calls, so they overlap):")
    print()
    print("| inclusive share | per request | area | function |")
    print("|---:|---:|---|---|")
    shown = 0
    for ir, fn in inc:
        if shown >= 30:
            break
        if re.search(r"\?\?\?:0x|_dl_|_start\b|start_thread|clone3?\b|\(below main\)", fn):
            continue
        print(f"| {ir / total * 100:.1f}% | {ir / requests:,.0f} | {area_of(fn)} | `{short(fn)}` |")
        shown += 1


if __name__ == "__main__":
    main()
