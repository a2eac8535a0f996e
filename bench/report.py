#!/usr/bin/env python3
"""Print bench/run's table, goal check and machine-readable summary.

usage: report.py OUTDIR NAME... (NAME order = row order; called by bench/run)
Reads OUTDIR/results.tsv (name, key, value), OUTDIR/startup.{pid1,direct}.N.json
(hyperfine exports, one per round) and OUTDIR/header.txt; writes OUTDIR/summary.json and
prints it on one line prefixed with "BENCH_SUMMARY_JSON ".
"""
import glob
import json
import os
import statistics
import sys

out, names = sys.argv[1], sys.argv[2:]
REF = "tini-static"

res = {n: {} for n in names}
with open(os.path.join(out, "results.tsv")) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            res.setdefault(parts[0], {})[parts[1]] = parts[2]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# Start-up times from hyperfine, pooled over the rounds: median per command.
for mode in ("pid1", "direct"):
    times = {}
    for path in sorted(glob.glob(os.path.join(out, f"startup.{mode}.*.json"))):
        with open(path) as f:
            data = json.load(f)
        for r in data.get("results", []):
            times.setdefault(r["command"], []).extend(r.get("times") or [r["median"]])
    med = {c: statistics.median(t) for c, t in times.items() if t}
    bare = med.get("bare")
    for n in names:
        if n in med:
            res[n][f"startup_{mode}_median_us"] = med[n] * 1e6
            res[n][f"startup_{mode}_runs"] = len(times[n])
            if bare is not None:
                res[n][f"startup_{mode}_bare_us"] = bare * 1e6
                res[n][f"startup_{mode}_overhead_us"] = (med[n] - bare) * 1e6

# Derived values, all numeric.
summary = {}
for n in names:
    r = res[n]
    s = {"path": r.get("path", "-")}
    if "note" in r:
        s["note"] = r["note"]
    if num(r.get("size_bytes")) is not None:
        s["size_bytes"] = int(num(r["size_bytes"]))
        s["size_kib"] = round(num(r["size_bytes"]) / 1024, 1)
        s["static"] = r.get("static") == "yes"
    for k in ("startup_pid1_median_us", "startup_pid1_overhead_us", "startup_pid1_bare_us",
              "startup_direct_median_us", "startup_direct_overhead_us", "startup_direct_bare_us"):
        if k in r:
            s[k] = round(float(r[k]), 1)
    if num(r.get("startup_instr")) is not None:
        s["startup_instructions"] = int(num(r["startup_instr"]))
    if num(r.get("startup_instr_env50")) is not None:
        s["startup_instructions_env50"] = int(num(r["startup_instr_env50"]))
    if num(r.get("reap_instr_lockstep")) is not None:
        s["reap_instructions_lockstep"] = int(num(r["reap_instr_lockstep"]))
    if num(r.get("startup_instr_qemu")) is not None:
        s["startup_instructions_qemu_aarch64"] = int(num(r["startup_instr_qemu"]))
    if num(r.get("peak_rss_kib")) is not None:
        s["peak_rss_kib"] = int(num(r["peak_rss_kib"]))
        s["rss_kib"] = int(num(r.get("rss_kib", "0")) or 0)
    if num(r.get("anon_kib")) is not None:
        s["anon_kib"] = int(num(r["anon_kib"]))
    for p, k in (("reap", "reap"), ("reap_batch", "reap_batch")):
        if num(r.get(f"{p}_cpu_ns_total")) is None:
            continue
        cnt = num(r.get(f"{p}_count")) or 1
        tot = num(r[f"{p}_cpu_ns_total"])
        s[f"{k}_cpu_ms_total"] = round(tot / 1e6, 2)
        s[f"{k}_cpu_us_per_zombie"] = round(tot / cnt / 1e3, 3)
        s[f"{k}_cpu_us_per_zombie_min"] = round(num(r.get(f"{p}_cpu_ns_min", tot)) / cnt / 1e3, 3)
        s[f"{k}_cpu_us_per_zombie_max"] = round(num(r.get(f"{p}_cpu_ns_max", tot)) / cnt / 1e3, 3)
        s[f"{k}_runs_cpu_ns_wakeups"] = r.get(f"{p}_runs", "").split()
        s[f"{k}_elapsed_ms"] = round(num(r[f"{p}_elapsed_ns"]) / 1e6, 1)
        s[f"{k}_wakeups"] = int(num(r.get(f"{p}_wakeups")) or 0)
    if num(r.get("sig_median_ns")) is not None:
        s["signal_median_us"] = round(num(r["sig_median_ns"]) / 1e3, 1)
        s["signal_p90_us"] = round(num(r["sig_p90_ns"]) / 1e3, 1)
    summary[n] = s

METRICS = [  # key, column title, format
    ("size_kib", "size KiB", "{:.0f}"),
    ("startup_pid1_overhead_us", "start +us PID1", "{:.0f}"),
    ("startup_direct_overhead_us", "start +us direct", "{:.0f}"),
    ("startup_instructions", "start instr", "{:,.0f}"),
    ("startup_instructions_env50", "instr +50 env", "{:,.0f}"),
    ("reap_instructions_lockstep", "instr/reap", "{:,.0f}"),
    ("peak_rss_kib", "peak RSS KiB", "{:.0f}"),
    ("anon_kib", "anon KiB", "{:.0f}"),
    ("reap_cpu_us_per_zombie", "reap us/zombie", "{:.2f}"),
    ("reap_batch_cpu_us_per_zombie", "batch us/zombie", "{:.2f}"),
    ("signal_median_us", "signal us", "{:.1f}"),
]


def ratio(n, key, ref=REF):
    a, b = summary.get(n, {}).get(key), summary.get(ref, {}).get(key)
    if a is None or b is None or b == 0:
        return None
    return a / b


for n in names:
    rs = {}
    for key, _, _ in METRICS:
        x = ratio(n, key)
        if x is not None:
            rs[key] = round(x, 3)
    if rs:
        summary[n]["ratio_vs_" + REF] = rs

# --- the table --------------------------------------------------------------
with open(os.path.join(out, "header.txt")) as f:
    header = [l.rstrip("\n") for l in f]
print()
for l in header:
    print(l)
print(f"# each cell: value (ratio to {REF}); start +us = median start-up time minus bare /bin/true")
print()
cols = ["init", "static"] + [t for _, t, _ in METRICS]
rows = []
for n in names:
    s = summary[n]
    if "note" in s and "size_bytes" not in s:
        rows.append([n, "-"] + [s["note"]] + [""] * (len(METRICS) - 1))
        continue
    row = [n, "yes" if s.get("static") else "no"]
    for key, _, fmt in METRICS:
        v = s.get(key)
        if v is None:
            row.append("-")
            continue
        cell = fmt.format(v)
        x = ratio(n, key)
        if x is not None and n != REF:
            cell += f" ({x:.2f}x)"
        row.append(cell)
    rows.append(row)
widths = [max(len(str(r[i])) for r in rows + [cols]) for i in range(len(cols))]
print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
print("  ".join("-" * w for w in widths))
for r in rows:
    print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())

# Absolute start-up times, for context.
print()
for mode, what in (("pid1", "unshare --pid --fork --mount-proc INIT -- /bin/true"),
                   ("direct", "INIT -- /bin/true (not PID 1)")):
    bare = next((summary[n].get(f"startup_{mode}_bare_us") for n in names
                 if f"startup_{mode}_bare_us" in summary[n]), None)
    if bare is None:
        continue
    parts = [f"bare {bare:.0f}"] + [f"{n} {summary[n][f'startup_{mode}_median_us']:.0f}"
                                    for n in names if f"startup_{mode}_median_us" in summary[n]]
    print(f"start-up medians, us, {what}: " + ", ".join(parts))
for k, what in (("reap", "burst, normal scheduling"), ("reap_batch", "batch, init at SCHED_IDLE during the burst")):
    reapers = [n for n in names if f"{k}_cpu_ms_total" in summary[n]]
    if not reapers:
        continue
    print(f"reaping ({what}), medians over reps: init CPU for the whole burst, "
          "us/zombie range over reps, init wake-ups, time until all were reaped")
    for n in reapers:
        s = summary[n]
        rng = f"{s[k + '_cpu_us_per_zombie_min']:.2f}-{s[k + '_cpu_us_per_zombie_max']:.2f}"
        print(f"  {n:12s} {s[k + '_cpu_ms_total']:7.2f} ms  {rng:>12s} us/zombie  "
              f"{s[k + '_wakeups']:5d} wake-ups  {s[k + '_elapsed_ms']:6.1f} ms")
for n in names:
    q = summary[n].get("startup_instructions_qemu_aarch64")
    if q is not None:
        print(f"{n}: start-up instructions as PID 1 (INIT -- /bin/true), aarch64 instructions counted by "
              f"qemu-user (-singlestep -d exec,nochain), the forked child's before exec included: {q:,}")
sig = [n for n in names if "signal_p90_us" in summary[n]]
if sig:
    print("signal latency p90, us: " + ", ".join(f"{n} {summary[n]['signal_p90_us']}" for n in sig))

# --- goals --------------------------------------------------------------------
goals = {}
e = summary.get("envinit", {})


def goal(name, key, ref, strict=False, spread_key=None):
    """spread_key: for a noisy timing measure, the reference's worst repetition;
    a miss that stays within the reference's own run-to-run range is a "tie"."""
    a, b = e.get(key), summary.get(ref, {}).get(key)
    if a is None or b is None:
        goals[name] = {"status": "unknown", "reason": f"no {key} for envinit or {ref}"}
        return
    ok = a < b if strict else a <= b
    top = summary.get(ref, {}).get(spread_key) if spread_key else None
    status = "met" if ok else ("tie" if top is not None and a <= top else "missed")
    goals[name] = {"status": status, "envinit": a, ref: b,
                   "ratio": round(a / b, 3) if b else None,
                   "by_percent": round((a / b - 1) * 100, 1) if b else None}


goal("startup_instructions <= tini-static", "startup_instructions", "tini-static")
goal("startup_instructions_env50 <= tini-static", "startup_instructions_env50", "tini-static")
goal("reap_instructions_lockstep <= tini-static", "reap_instructions_lockstep", "tini-static")
goal("peak_rss_kib <= tini-static", "peak_rss_kib", "tini-static")
goal("anon_kib <= tini-static", "anon_kib", "tini-static")
reap_ref = "tini" if "reap_cpu_us_per_zombie" in summary.get("tini", {}) else "tini-static"
goal(f"reap_cpu_us_per_zombie <= {reap_ref}", "reap_cpu_us_per_zombie", reap_ref,
     spread_key="reap_cpu_us_per_zombie_max")
goal(f"reap_batch_cpu_us_per_zombie <= {reap_ref}", "reap_batch_cpu_us_per_zombie", reap_ref,
     spread_key="reap_batch_cpu_us_per_zombie_max")
goal("size_bytes < tini-static", "size_bytes", "tini-static", strict=True)
goal("size_bytes < catatonit", "size_bytes", "catatonit", strict=True)
print()
print("goals for envinit:")
for g, v in goals.items():
    if v["status"] == "unknown":
        print(f"  {g:45s} unknown ({v['reason']})")
    else:
        sign = "+" if v["by_percent"] >= 0 else ""
        print(f"  {g:45s} {v['status']:6s}  ratio {v['ratio']:.3f} ({sign}{v['by_percent']}%)")

doc = {"header": header, "inits": summary, "goals": goals}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(doc, f, indent=2)
print()
print("BENCH_SUMMARY_JSON " + json.dumps(doc, separators=(",", ":")))
