#!/usr/bin/env python3
"""The daemon's CPU per JSON-RPC call: N calls of METHOD (default `getinfo`) over T
keep-alive HTTP connections to one node, and the node process's utime + stime (from /proc)
before and after, divided by N.

  rpc_load.py DATADIR N T [METHOD]

DATADIR is a node's data directory (`node.json` gives the RPC address and the pid, `.cookie`
the credentials). The client is Python and shares the machine: the calls/s it reaches are
its own limit, the CPU per call is the daemon's. BENCHMARKS.md ("Issue 17 — the next
round") has the figures.
"""
import base64
import http.client
import json
import sys
import threading
import time


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    datadir, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    method = sys.argv[4] if len(sys.argv) > 4 else "getinfo"
    with open(f"{datadir}/node.json") as f:
        info = json.load(f)
    with open(f"{datadir}/.cookie") as f:
        cookie = f.read().strip()
    host, port = info["rpc_address"].rsplit(":", 1)
    auth = "Basic " + base64.b64encode(f"__cookie__:{cookie}".encode()).decode()
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": None})
    headers = {"Content-Type": "application/json", "Authorization": auth}

    def work(k):
        conn = http.client.HTTPConnection(host, int(port))
        for _ in range(k):
            conn.request("POST", "/", body, headers)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or b'"error"' in data:
                raise SystemExit(f"call failed: {r.status} {data[:200]!r}")

    per = n // threads
    before, t0 = cpu_ticks(info["pid"]), time.time()
    workers = [threading.Thread(target=work, args=(per,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed, after = time.time() - t0, cpu_ticks(info["pid"])
    calls = per * threads
    tick_us = 1e6 / 100  # USER_HZ
    print(
        f"{method}: {calls} calls in {elapsed:.2f} s = {calls / elapsed:.0f}/s; "
        f"daemon CPU {(after - before) * tick_us / calls:.0f} us per call"
    )


if __name__ == "__main__":
    main()
