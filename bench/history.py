#!/usr/bin/env python3
"""History case: list-endpoint latency on the current (empty) database, then with 1,000 past runs (every
path but page=1000 returns a full page, as it will with 1M: the page's size is not the history's
cost), then with 1,000,000; prints each figure with its ratios (called by bench/run.sh, which then
measures exec/s on the 1M database). After each bulk insert it checks that the API's `total`
equals a real COUNT(*) of the rows for each filter.

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

# (label, past runs in the database) at each measurement after the empty one.
STAGES = (("1k", 1_000), ("1M", 1_000_000))
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


def bulk_insert(db, wf, done, until):
    """Past runs number done+1 .. until (so stages add to each other)."""
    c = sqlite3.connect(db, timeout=60)
    ws, name, version, definition = c.execute(
        "SELECT workspace_id, workflow_name, workflow_version, definition_json FROM runs WHERE workflow_id = ? LIMIT 1",
        (wf,)).fetchone()
    seq = c.execute("SELECT COALESCE(MAX(seq), 0) FROM runs WHERE workspace_id = ?", (ws,)).fetchone()[0]
    now = int(time.time() * 1000) - 86_400_000
    while done < until:
        n = min(CHUNK, until - done)
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
    results = [("empty", measure(base, key, wf, dur))]
    exact, inserted = True, 0
    for label, past in STAGES:
        t0 = time.time()
        ws = bulk_insert(db, wf, inserted, past)
        print(f"history: inserted {past - inserted:,} past runs in {time.time() - t0:.0f} s ({past:,} now)", flush=True)
        inserted = past
        exact &= cross_check(base, key, db, ws, wf)
        results.append((label, measure(base, key, wf, dur)))
    (_, empty), (_, full), (_, last) = results
    for name in empty:
        e, f, a = empty[name], full[name], last[name]
        figures = " ".join(
            f"{what} {e[i]:.2f} / {f[i]:.2f} -> {a[i]:.2f} ({a[i] / max(e[i], 0.001):.1f}x empty, "
            f"{a[i] / max(f[i], 0.001):.1f}x 1k)" for i, what in ((0, "p50_ms"), (1, "p99_ms")))
        print(f"history GET runs?{name} (empty / 1k -> 1M): {figures} errors={e[2] + f[2] + a[2]}")
    if not exact:
        sys.exit("history: a total differs from the rows it counts")


if __name__ == "__main__":
    main()
