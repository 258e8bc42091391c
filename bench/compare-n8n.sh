#!/usr/bin/env bash
# The peer kit on n8n, then sealflow, back to back on this machine, with the ratios.
#
#   bench/compare-n8n.sh [duration_s (1..30, default 20)]
#
# Uses the kit's own scripts (PEER_KIT, default ../shared/peers/n8n next to the repo): setup.sh
# installs n8n the first time (npm, ~3 min, ~1.7 GB, under the kit's PEER_ROOT), start.sh starts
# its sink and n8n, bench.sh measures c=1 and c=16, stop.sh stops only what start.sh started.
# Then bench/run.sh measures sealflow on the same cases. If n8n cannot be installed here, this
# says so and prints no ratio: nothing is estimated.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DUR=${1:-20}
PEER_KIT=${PEER_KIT:-$REPO/../shared/peers/n8n}
OUT=$(mktemp -d -t sealflow-compare.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

n8n_ok=1
if ! "$PEER_KIT/setup.sh" --fresh > "$OUT/setup.log" 2>&1; then
  echo "n8n could not be installed here (see the kit's setup.sh; last lines below); no ratios." >&2
  tail -5 "$OUT/setup.log" >&2
  n8n_ok=0
fi
if [ "$n8n_ok" = 1 ]; then
  "$PEER_KIT/start.sh"
  "$PEER_KIT/bench.sh" "$DUR" "1 16" | tee "$OUT/n8n.txt" || true
  "$PEER_KIT/stop.sh"
fi
PEER_KIT=$PEER_KIT "$REPO/bench/run.sh" "$DUR" "sink c1 c16" | tee "$OUT/sealflow.txt"
[ "$n8n_ok" = 1 ] || exit 0
python3 - "$OUT/n8n.txt" "$OUT/sealflow.txt" <<'PY'
import re, sys
def rates(path, pat):
    out = {}
    for line in open(path):
        m = re.search(pat, line)
        e = re.search(r"exec_per_s=([\d.]+)", line)
        p = re.search(r"p50_ms=([\d.]+)", line)
        if m and e:
            out[m.group(1)] = (float(e.group(1)), float(p.group(1)) if p else None)
    return out
n8n = rates(sys.argv[1], r"c=(\d+) ")
sf = rates(sys.argv[2], r"sqlite-wait-c(\d+) ")
for c in sorted(set(n8n) & set(sf), key=int):
    print(f"ratio c={c}: sealflow/n8n exec_per_s = {sf[c][0] / n8n[c][0]:.1f}x, "
          f"p50 n8n/sealflow = {n8n[c][1] / sf[c][1]:.1f}x")
PY
