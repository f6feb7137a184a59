#!/usr/bin/env python3
"""CPU per thread of the daemons and the load generator during a benchmark phase.

  thread_cpu.py sample LOG PID...      every 0.1 s, each thread's utime+stime (ticks) of the
                                       PIDs, until they have all exited
  thread_cpu.py report LOG N SECS PAYER PAYEE CLIENT
                                       the last SECS seconds of CLIENT's life (the phase
                                       measured, N payments): ms of CPU per payment and % of
                                       a core, per process and thread name ('main' = the
                                       node task's thread)

Threads that start and end between two samples (scoped signing threads) are not seen: the
per-thread sum is a lower bound of the processes' CPU. BENCHMARKS.md, "Issue 17 — the last
round", has the commands.
"""
import collections
import json
import os
import sys
import time


def sample(log, pids):
    with open(log, "w") as out:
        while True:
            alive, snap = False, {}
            for p in pids:
                try:
                    for t in os.listdir(f"/proc/{p}/task"):
                        with open(f"/proc/{p}/task/{t}/stat") as f:
                            s = f.read()
                        comm = s[s.index("(") + 1 : s.rindex(")")]
                        fields = s[s.rindex(")") + 2 :].split()
                        snap[f"{p}/{t}/{comm}"] = int(fields[11]) + int(fields[12])
                    alive = True
                except (FileNotFoundError, ProcessLookupError):
                    pass
            out.write(json.dumps([time.time(), snap]) + "\n")
            out.flush()
            if not alive:
                return
            time.sleep(0.1)


def report(log, n, secs, payer, payee, client):
    names = {payer: "payer", payee: "payee", client: "client"}
    rows = [json.loads(line) for line in open(log)]
    end = max(i for i, (_, s) in enumerate(rows) if any(k.startswith(client + "/") for k in s))
    t_end = rows[end][0]
    start = min(range(len(rows)), key=lambda i: abs(rows[i][0] - (t_end - secs)))
    a, b = rows[start][1], rows[end][1]
    agg = collections.Counter()
    for k, v in b.items():
        p, t, comm = k.split("/", 2)
        agg[(names.get(p, p), "main" if p == t else comm)] += v - a.get(k, 0)
    total, dt = sum(agg.values()), rows[end][0] - rows[start][0]
    print(f"window {dt:.2f} s, {n} payments: {total * 10 / n:.2f} ms CPU per payment, "
          f"{total / dt:.0f} % of a core")
    for (p, c), d in sorted(agg.items(), key=lambda x: -x[1]):
        if d:
            print(f"  {p:7} {c:18} {d * 10 / n:6.3f} ms/payment  {d / dt:5.1f} %")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 8 and sys.argv[1] == "report":
        report(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), *sys.argv[5:8])
    else:
        sys.exit(__doc__)
