#!/usr/bin/env python3
"""One summary line per bench case (called by bench/run.sh)."""
import json
import sys


def wrk_result(out):
    line = next(l for l in out.splitlines() if l.startswith("WRK_RESULT"))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def main(argv):
    if argv[0] == "--sink":
        dur, out = argv[1], argv[2]
        r = wrk_result(out)
        secs = r["duration_us"] / 1e6
        print(f"sink-alone c=16 d={dur}s: req_per_s={r['requests'] / secs:.0f} p50_ms={r['p50_us'] / 1000:.2f} "
              f"p99_ms={r['p99_us'] / 1000:.2f} errors={int(r['err_status'] + r['err_connect'] + r['err_read'] + r['err_write'] + r['err_timeout'])}")
        return
    name, c, dur, out, s0, s1, d0, d1, cpu0, cpu1, hz, peak_kb, fsyncs, k0, k1, x0, x1 = argv
    r = wrk_result(out)
    s0, s1 = json.loads(s0), json.loads(s1)
    secs = r["duration_us"] / 1e6
    ok = r["requests"] - r["err_status"]
    errors = int(r["err_status"] + r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"])
    completed = int(d1) - int(d0)
    sink = s1["requests"] - s0["requests"]
    auth_bad = s1["auth_bad"] - s0["auth_bad"]
    body_bad = s1["body_bad"] - s0["body_bad"]
    cpu = 100 * (int(cpu1) - int(cpu0)) / int(hz) / secs
    fsync_per_run = f"{int(fsyncs) / completed:.2f}" if fsyncs.isdigit() and completed else "n/a"
    # CPU time per completed run: steadier than the rate on a shared machine.
    cpu_ms = (int(cpu1) - int(cpu0)) * 1000 / int(hz)
    cpu_ms_per_run = f"{cpu_ms / completed:.3f}" if completed else "n/a"
    # Counts, steady whatever the machine does: group commits, and PostgreSQL transactions
    # (the writer's commits and every read outside a transaction).
    commits_per_run = f"{(float(k1) - float(k0)) / completed:.2f}" if completed else "n/a"
    xacts_per_run = f"{(int(x1) - int(x0)) / completed:.2f}" if x0.isdigit() and completed else "n/a"
    # Ingest without ?wait answers before the run ends: its rate is the completed runs'.
    rate = completed / secs if "ingest" in name else ok / secs
    print(f"{name} c={c} d={dur}s: exec_per_s={rate:.0f} p50_ms={r['p50_us'] / 1000:.2f} "
          f"p99_ms={r['p99_us'] / 1000:.2f} errors={errors} peak_rss_mb={int(peak_kb) / 1024:.1f} "
          f"cpu_pct={cpu:.0f} cpu_ms_per_run={cpu_ms_per_run} fsync_per_run={fsync_per_run} "
          f"commits_per_run={commits_per_run} pg_xacts_per_run={xacts_per_run} | wrk_2xx={int(ok)} completed={completed} "
          f"sink_got={sink} sink_eq_completed={'yes' if sink == completed else 'NO'} auth_bad={auth_bad} "
          f"body_bad={body_bad}")


if __name__ == "__main__":
    main(sys.argv[1:])
