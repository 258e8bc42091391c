#!/usr/bin/env python3
"""History case: list-endpoint latency and exec/s on the current database, then again after a bulk
insert of 1,000,000 past runs; prints each figure with its ratio (called by bench/run.sh). After the
insert it checks that the API's `total` equals a real COUNT(*) of the rows for each filter.

usage: history.py BASE_URL API_KEY WORKFLOW_ID SQLITE_DB DURATION_S
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

PAST_RUNS = 1_000_000
CHUNK = 50_000


def wrk_get(base, key, path, dur):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.headers["Authorization"] = "Bearer %s"\n' % key)
        f.write(open(os.path.join(os.path.dirname(__file__), "result.lua")).read())
        lua = f.name
    out = subprocess.run(["wrk", "-t1", "-c4", f"-d{dur}s", "--timeout", "10s", "-s", lua, base + path],
                         capture_output=True, text=True, timeout=dur + 30).stdout
    os.unlink(lua)
    line = next(l for l in out.splitlines() if l.startswith("WRK_RESULT"))
    r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    return r["p50_us"] / 1000, r["p99_us"] / 1000, int(r["err_status"])


def measure(base, key, wf, dur):
    paths = {
        "limit=20": "/api/workflows/runs?limit=20",
        "workflow_id": f"/api/workflows/runs?limit=20&workflow_id={wf}",
        "status=completed": "/api/workflows/runs?limit=20&status=completed",
        "status=failed": "/api/workflows/runs?limit=20&status=failed",
        "page=1000": "/api/workflows/runs?limit=20&page=1000",
    }
    return {name: wrk_get(base, key, p, dur) for name, p in paths.items()}


def bulk_insert(db, wf):
    c = sqlite3.connect(db, timeout=60)
    ws, name, version, definition = c.execute(
        "SELECT workspace_id, workflow_name, workflow_version, definition_json FROM runs WHERE workflow_id = ? LIMIT 1",
        (wf,)).fetchone()
    seq = c.execute("SELECT COALESCE(MAX(seq), 0) FROM runs WHERE workspace_id = ?", (ws,)).fetchone()[0]
    now = int(time.time() * 1000) - 86_400_000
    done = 0
    while done < PAST_RUNS:
        n = min(CHUNK, PAST_RUNS - done)
        # Past runs predate the live ones: negative seq keeps the live ones on the first page.
        # They are written finished, behind the server's back: the triggers on `runs` count them
        # for the list's `total` as they are inserted (checked by cross_check below).
        c.execute("BEGIN IMMEDIATE")
        c.execute(
            """WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
               INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json,
                                 status, trigger_type, input_json, next_step, wake_at, created_at, started_at,
                                 completed_at, seq)
               SELECT 'run_past' || (? + i), ?, ?, ?, ?, ?, CASE WHEN (? + i) % 50 = 0 THEN 'failed' ELSE 'completed' END,
                      'webhook', '{"id":"past"}', 1, ?, ?, ?, ?, -(? + i) FROM k""",
            (n, done, ws, wf, name, version, definition, done, now, now, now, now, done))
        c.execute("COMMIT")
        done += n
    c.close()
    _ = seq
    return ws


def api_total(base, key, query):
    req = urllib.request.Request(f"{base}/api/workflows/runs?limit=1&{query}",
                                 headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["total"]


def cross_check(base, key, db, ws, wf):
    """The API's `total` against a real COUNT(*) of the rows, for each filter measured."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    ok = True
    for query, where, args in (
        ("", "workspace_id = ?", (ws,)),
        (f"workflow_id={wf}", "workspace_id = ? AND workflow_id = ?", (ws, wf)),
        ("status=completed", "workspace_id = ? AND status = 'completed'", (ws,)),
        ("status=failed", "workspace_id = ? AND status = 'failed'", (ws,)),
    ):
        rows = c.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", args).fetchone()[0]
        total = api_total(base, key, query)
        ok &= total == rows
        print(f"history: total?{query or 'all'} = {total:,}, COUNT(*) = {rows:,}"
              f" {'(equal)' if total == rows else '(DIFFERENT)'}", flush=True)
    c.close()
    return ok


def main():
    base, key, wf, db, dur = sys.argv[1:6]
    dur = int(dur)
    before = measure(base, key, wf, dur)
    t0 = time.time()
    ws = bulk_insert(db, wf)
    print(f"history: inserted {PAST_RUNS:,} past runs in {time.time() - t0:.0f} s", flush=True)
    exact = cross_check(base, key, db, ws, wf)
    after = measure(base, key, wf, dur)
    for name in before:
        b, a = before[name], after[name]
        print(f"history GET runs?{name}: p50_ms {b[0]:.2f} -> {a[0]:.2f} ({a[0] / max(b[0], 0.001):.1f}x) "
              f"p99_ms {b[1]:.2f} -> {a[1]:.2f} ({a[1] / max(b[1], 0.001):.1f}x) errors={b[2] + a[2]}")
    if not exact:
        sys.exit("history: a total differs from the rows it counts")


if __name__ == "__main__":
    main()
