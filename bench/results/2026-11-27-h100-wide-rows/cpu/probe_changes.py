#!/usr/bin/env python3
"""Per-layer statistics of LoSA's change scores from probe-changes.patch's stderr lines.

Run (CPU, ~1 minute): git apply probe-changes.patch, rebuild, then
  LOSA_DEBUG_DELTA=1 losa eval --model models/losa-tasks-6l --device cpu --tasks chain frequent multi_value \
    --lengths 2048 --samples 2 --modes losa --budgets 64 --tau 0.5 --k-active --batch 1 2> probe-2k-changes.txt
  python3 probe_changes.py probe-2k-changes.txt
With --batch 1 the model's layers call the step in order, so line i belongs to layer i % 6."""
import statistics as st
import sys

LAYERS = 6
rows = [[float(x) for x in l.split()[1:]] for l in open(sys.argv[1]) if l.startswith("DELTA")]
per_layer = [rows[i::LAYERS] for i in range(LAYERS)]


def tau_rows(changes, tau=0.5):
    """Rows tau takes: the fewest largest changes whose sum reaches tau of the total."""
    ordered = sorted((x for x in changes if x > 0), reverse=True)
    total, taken, n = sum(ordered), 0.0, 0
    for x in ordered:
        if taken >= tau * total:
            break
        taken += x
        n += 1
    return n


print(f"{len(rows)} step lines; tokens a step (mean) with normalised change at or above each threshold")
print("layer  steps  >=0.01  >=0.1  >=0.5  tau0.5-rows  zero  median")
for layer, lines in enumerate(per_layer):
    count = lambda t: st.mean(sum(x >= t for x in v) for v in lines)
    print(f"{layer:5d} {len(lines):6d} {count(0.01):7.1f} {count(0.1):6.1f} {count(0.5):6.1f} "
          f"{st.mean(tau_rows(v) for v in lines):11.1f} {st.mean(sum(x == 0 for x in v) for v in lines):5.1f} "
          f"{st.median(x for v in lines for x in v):7.3g}")
