#!/usr/bin/env bash
# Trains baseline and each given method with one recipe and seed on Fashion-MNIST (or whatever the
# extra flags select) and prints a markdown table of every member's last and best test top-1, the
# training images/s and peak memory relative to the baseline. Runs go to $OUT_ROOT/<method>; a run
# interrupted earlier continues from its last checkpoint, so a long comparison can span sessions.
#   scripts/compare_methods.sh [--methods "ekd-fws ffl ffsd mate dkel"] [train_cifar flags...]
# Example (docs/results.md):
#   scripts/compare_methods.sh --epochs 5 --limit-train 5000 --limit-test 2000 --seed 0
set -euo pipefail
BUILD_DIR=${OKD_BUILD_DIR:-build}
OUT_ROOT=${OUT_ROOT:-runs/compare}
methods="ekd-fws ffl ffsd mate dkel"
if [[ "${1:-}" == "--methods" ]]; then
  methods=$2
  shift 2
fi
mkdir -p "$OUT_ROOT"
for m in baseline $methods; do
  if [[ -f "$OUT_ROOT/$m/summary.json" ]]; then
    echo "== $m: already done ($OUT_ROOT/$m/summary.json)"
    continue
  fi
  if [[ -d "$OUT_ROOT/$m/checkpoints/last" ]]; then
    # An interrupted run continues from its last checkpoint (train_cifar --resume is exact).
    echo "== $m: resuming $OUT_ROOT/$m"
    "$BUILD_DIR/apps/train_cifar" --resume "$OUT_ROOT/$m" >> "$OUT_ROOT/$m.log" 2>&1 ||
      { echo "$m failed: see $OUT_ROOT/$m.log"; tail -5 "$OUT_ROOT/$m.log"; }
    continue
  fi
  rm -rf "$OUT_ROOT/$m"
  echo "== $m: $BUILD_DIR/apps/train_cifar --method $m $* --out $OUT_ROOT/$m"
  "$BUILD_DIR/apps/train_cifar" --method "$m" "$@" --out "$OUT_ROOT/$m" > "$OUT_ROOT/$m.log" 2>&1 ||
    { echo "$m failed: see $OUT_ROOT/$m.log"; tail -5 "$OUT_ROOT/$m.log"; }
done
python3 - "$OUT_ROOT" baseline $methods <<'PY'
import json, os, sys
root, names = sys.argv[1], sys.argv[2:]
runs = {n: json.load(open(os.path.join(root, n, "summary.json")))
        for n in names if os.path.exists(os.path.join(root, n, "summary.json"))}
base = runs.get("baseline")
print("| method | member | last top-1 | best top-1 (epoch) | img/s | img/s vs baseline | peak MiB | memory vs baseline |")
print("|---|---|---|---|---|---|---|---|")
for n, r in runs.items():
    ips, mem = r.get("train_images_per_second", 0), r.get("peak_rss_mib", 0)
    rel_ips = ips / base["train_images_per_second"] if base and base.get("train_images_per_second") else float("nan")
    rel_mem = mem / base["peak_rss_mib"] if base and base.get("peak_rss_mib") else float("nan")
    for i, (member, s) in enumerate(r["members"].items()):
        dep = " (deployed)" if member == r["deployed"] else ""
        extra = f"| {ips:.1f} | {rel_ips:.2f} | {mem:.0f} | {rel_mem:.2f} |" if i == 0 else "| | | | |"
        print(f"| {n if i == 0 else ''} | {member}{dep} | {s['last_top1']:.2f} | {s['best_top1']:.2f} ({s['best_epoch']}) {extra}")
PY
