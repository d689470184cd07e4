#!/usr/bin/env python3
"""Turns one bench/run.sh run folder into the markdown table the run prints.

usage: report.py RUN_DIR            the whole report
       report.py --checks-only RUN_DIR

Reads RUN_DIR/results.tsv (one line per wrk run), checks.tsv (behaviour checks), idle.tsv (the
idle-keys scenario) and meta.txt (machine and settings). Per scenario and target: requests per
second as the median over rounds with min-max spread; the median of the rounds' p50 and p99;
each as a ratio to the upstream and to the faster anchor (the anchor with more req/s in that
scenario), as ratios of medians; the target's CPU seconds per 10,000 requests (all its
processes; for datahub also PostgreSQL's, which serves its key lookups); the target's peak RSS
(VmHWM summed over its processes, the highest seen in the scenario). Then the targets, each
with PASS or MISS and the measured figure.
"""
import csv
import os
import statistics as st
import sys

ANCHORS = ("haproxy", "nginx")
SCENARIO_TEXT = {
    "hot": "hot (keys with high limits, steady load)",
    "limited": "limited (every key over its limit: 429)",
    "cold": "cold (fresh instance, first request of each key)",
    "idle-keys": "idle-keys (one pass over keys never used before)",
}


def read_meta(run):
    meta = {}
    path = os.path.join(run, "meta.txt")
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    return meta


def checks_table(run):
    path = os.path.join(run, "checks.tsv")
    rows = [line.rstrip("\n").split("\t") for line in open(path)] if os.path.exists(path) else []
    out = ["| target | no key | unknown key | case-flipped key | valid key | 5/min key: requests 1-6 "
           "| its Retry-After | 3/h key: requests 1-4 | its Retry-After | result |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return out, rows


def fmt_ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "–"


def main():
    args = sys.argv[1:]
    checks_only = args and args[0] == "--checks-only"
    run = args[-1]
    meta = read_meta(run)
    clk = int(meta.get("clk_tck", "100"))
    checks, check_rows = checks_table(run)
    if checks_only:
        print("Behaviour checks:\n")
        print("\n".join(checks))
        return

    rows = list(csv.DictReader(open(os.path.join(run, "results.tsv")), delimiter="\t"))
    for r in rows:
        dur = int(r["duration_us"])
        if r["mode"] == "pass":
            # wrk counts requests sent; a pass counts answers, one per key
            r["n"] = int(r["answers"])
            r["rps_eff"] = r["n"] / (dur / 1e6) if dur else 0.0
            r["bad"] = r["n"] - int(r["a2xx"])
        else:
            r["n"] = int(r["requests"])
            r["rps_eff"] = float(r["rps"])
            r["bad"] = int(r["non2xx"])

    scenarios = []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])

    stats = {}  # (scenario, target) -> dict
    for sc in scenarios:
        targets = []
        for r in rows:
            if r["scenario"] == sc and r["target"] not in targets:
                targets.append(r["target"])
        for t in targets:
            rs = [r for r in rows if r["scenario"] == sc and r["target"] == t]
            rps = [r["rps_eff"] for r in rs]
            n = sum(r["n"] for r in rs)
            srv = sum(int(r["srv_ticks"]) for r in rs) / clk
            pg = sum(int(r["pg_ticks"]) for r in rs) / clk
            stats[(sc, t)] = {
                "rps": st.median(rps), "min": min(rps), "max": max(rps), "rounds": len(rs),
                "p50": st.median(float(r["p50_us"]) for r in rs) / 1000,
                "p99": st.median(float(r["p99_us"]) for r in rs) / 1000,
                "cpu": srv / n * 10000 if n else None,
                "pg": pg / n * 10000 if n else None,
                "hwm": max(int(r["hwm_kib"]) for r in rs) / 1024,
                "bad": sum(r["bad"] for r in rs), "n": n,
                "a429": sum(int(r["a429"]) for r in rs), "mode": rs[0]["mode"],
                "sockerr": sum(int(r["sockerr"]) for r in rs),
            }

    def faster_anchor(sc):
        have = [a for a in ANCHORS if (sc, a) in stats]
        return max(have, key=lambda a: stats[(sc, a)]["rps"]) if have else None

    print("## DataHub benchmark" + (" (quick mode: a harness check, not a measurement)"
                                   if meta.get("mode") == "quick" else ""))
    print()
    for k in ("machine", "tools", "load", "pinning", "workers", "gateway", "keys"):
        if k in meta:
            print(f"- {k}: {meta[k]}")
    print()
    print("| scenario | target | req/s (median) | min–max (spread) | ×upstream | ×faster anchor "
          "| p50 ms | ×up | ×anchor | p99 ms | ×up | ×anchor | CPU s / 10k req | peak RSS MiB "
          "| non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in scenarios:
        fa = faster_anchor(sc)
        up = stats.get((sc, "upstream"))
        an = stats.get((sc, fa)) if fa else None
        for (s, t), v in stats.items():
            if s != sc:
                continue
            spread = ("%s–%s (%.0f%%)" % (f"{v['min']:,.0f}", f"{v['max']:,.0f}",
                                           (v["max"] - v["min"]) / v["rps"] * 100)
                      if v["rounds"] > 1 else "1 round")
            cpu = "–" if v["cpu"] is None else "%.3f" % v["cpu"]
            if t == "datahub" and v["pg"]:
                cpu += " + PG %.3f" % v["pg"]
            bad = "%.1f%%" % (v["bad"] / v["n"] * 100) if v["n"] else "–"
            if v["sockerr"]:
                bad += f", {v['sockerr']} socket errors"
            name = t + (" (faster anchor)" if t == fa else "")
            print(f"| {sc} | {name} | {v['rps']:,.0f} | {spread} "
                  f"| {fmt_ratio(v['rps'], up and up['rps'])} | {fmt_ratio(v['rps'], an and an['rps'])} "
                  f"| {v['p50']:.2f} | {fmt_ratio(v['p50'], up and up['p50'])} "
                  f"| {fmt_ratio(v['p50'], an and an['p50'])} "
                  f"| {v['p99']:.2f} | {fmt_ratio(v['p99'], up and up['p99'])} "
                  f"| {fmt_ratio(v['p99'], an and an['p99'])} "
                  f"| {cpu} | {v['hwm']:.1f} | {bad} |")
    print()
    print("Scenarios: " + "; ".join(f"`{s}`: {SCENARIO_TEXT.get(s, s)}" for s in scenarios) + ".")
    print("Ratios are ratios of medians; for latency a ratio under 1 is better. CPU counts all of "
          "a target's processes (for datahub PostgreSQL's too, after `+ PG`). Peak RSS is the "
          "highest VmHWM seen, summed over the target's processes. `non-2xx` is the share of "
          "answers that were not 2xx (in `limited`, those are the 429s).")

    idle = None
    ipath = os.path.join(run, "idle.tsv")
    if os.path.exists(ipath):
        idle = next(csv.DictReader(open(ipath), delimiter="\t"))
        keys = int(idle["keys"])
        rss0, busy, rss1, hwm = (int(idle[k]) for k in ("rss0_kib", "rss_busy_kib", "rss1_kib",
                                                         "hwm_kib"))
        idle["per_key"] = (rss1 - rss0) * 1024 / keys
        print()
        print(f"idle-keys memory (datahub, KEY_IDLE_TIMEOUT_MS={idle['idle_timeout_ms']}): RSS "
              f"{rss0 / 1024:.1f} MiB before, {busy / 1024:.1f} MiB right after {keys:,} keys were "
              f"used once ({idle['actors_busy']} key actors alive, "
              f"{(busy - rss0) * 1024 / keys:,.0f} B per key), {rss1 / 1024:.1f} MiB once they "
              f"went idle ({idle['actors1']} key actors alive): **{idle['per_key']:,.0f} B per "
              f"idle key**. Peak RSS {hwm / 1024:.1f} MiB.")

    cpath = os.path.join(run, "crashes.tsv")
    crashes = [line.rstrip("\n").split("\t") for line in open(cpath)] if os.path.exists(cpath) else []
    for t, sc, rnd, when, status in crashes:
        sig = " (killed by signal %d)" % (int(status) - 128) if int(status) > 128 else ""
        print()
        print(f"**{t} exited on its own {when} ({sc}, round {rnd}), status {status}{sig}**; "
              "the run went on with a fresh instance.")

    kpath = os.path.join(run, "killed.txt")
    killed = [line.strip() for line in open(kpath)] if os.path.exists(kpath) else []
    for t in sorted(set(killed)):
        print()
        print(f"**{t} did not exit within 30 s of SIGTERM {killed.count(t)} time(s)** and was "
              "stopped with SIGKILL.")

    print()
    print("Targets (datahub):")
    print()
    print("| target | measured | result |")
    print("|---|---|---|")

    def result(ok):
        return "PASS" if ok else "MISS"

    hot, fa = stats.get(("hot", "datahub")), faster_anchor("hot")
    if hot and fa:
        a = stats[("hot", fa)]
        ratio = hot["rps"] / a["rps"]
        goal = "goal 1.2× reached" if ratio >= 1.2 else "goal 1.2× not reached"
        print(f"| hot: throughput at least the faster anchor's (goal 1.2×) | {hot['rps']:,.0f} vs "
              f"{a['rps']:,.0f} req/s ({fa}): {ratio:.2f}× | {result(ratio >= 1)} ({goal}) |")
        print(f"| hot: p99 no worse than the faster anchor's | {hot['p99']:.2f} vs {a['p99']:.2f} ms "
              f"({fa}) | {result(hot['p99'] <= a['p99'])} |")
    else:
        print("| hot: throughput and p99 against the faster anchor | not measured | – |")
    if idle:
        print(f"| idle-keys: under 2 KiB per key used once that went idle | {idle['per_key']:,.0f} B "
              f"per key | {result(idle['per_key'] < 2048)} |")
    else:
        print("| idle-keys: under 2 KiB per idle key | not measured | – |")
    lim = stats.get(("limited", "datahub"))
    if lim and hot:
        ratio = lim["rps"] / hot["rps"]
        print(f"| limited: the 429 path at least as fast as the proxied path | {lim['rps']:,.0f} vs "
              f"{hot['rps']:,.0f} req/s: {ratio:.2f}× | {result(ratio >= 1)} |")
    else:
        print("| limited: the 429 path at least as fast as the proxied path | not measured | – |")
    dh = [r for r in check_rows if r[0] == "datahub"]
    dh_crashes = [c for c in crashes if c[0] == "datahub"]
    if dh_crashes:
        print(f"| no crash | {len(dh_crashes)} crash(es) | MISS |")
    if dh:
        print(f"| behaviour checks | {dh[0][-1]} | {result(dh[0][-1].startswith('PASS'))} |")

    print()
    print("Behaviour checks:")
    print()
    print("\n".join(checks))


if __name__ == "__main__":
    main()
