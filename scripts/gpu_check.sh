#!/usr/bin/env bash
# The GPU check of issue #12, one call on a lent GPU machine (../shared/gpu/README.md):
#   bash ../shared/gpu/prepare.sh                                    (here: fills .gpu/)
#   device run, carry [".gpu"], timeout_s 590:  . .gpu/env.sh && bash scripts/gpu_check.sh
# It prints, and writes under $OUT (default ./gpu_check) as gpu_check.md + runs.tar.gz:
#   1. steps/s of every classification method (DANN first) on mnist_mnistm at 32-true (bf16-mixed was measured
#      no faster on these nets, results/bench/bench.md), at 1 and 8
#      updates per Lightning step, eager and on the CUDA-graph fast path (bench.py --graphs off on, resident
#      data, channels-last weights; each pair built once);
#   2. one full DANN mnist_mnistm run at the default 10,000 steps alone on the GPU (trainer=gpu,
#      updates_per_step=8: Lightning's per-step machinery once per 8 updates, methods/base.py): the process's
#      wall time and its accuracy, eager and on the fast path (runner=cuda_graphs, da_bench/fast_path.py);
#   3. DANN with updates_per_step=8, eager and on the fast path, at 5 seeds (10 runs), packed 10 at a time on
#      the one GPU (run_packed.py): the grid's wall time, and DANN's target accuracy eager and on the fast path
#      over seeds (da-bench-tables). (On the H200, table=mnistm's 15 runs besides these ran past the limit.)
# Each part has its own time limit, so a slow part cannot eat the next one's; what finished is written.
# SMOKE=1 runs every part on the CPU at a few steps (to check the script itself without a GPU).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
report="$OUT/gpu_check.md"
logs=${LOGS:-$(mktemp -d)/logs}  # fresh: a finished run left by an earlier check would be skipped
py=$(command -v python3 || command -v python)
if [ "${SMOKE:-0}" = 1 ]; then
  device=cpu; trainer="trainer=default"; bench_steps=(--steps 16 --warmup 8); run_steps="trainer.max_steps=4"
  seeds=0; jobs=2; limits=(400 120 120 500); precisions=(32-true)
  graphs="runner=cuda_graphs runner.rehearse=true"  # no CUDA: rehearsed
else
  device=cuda; trainer="trainer=gpu"; bench_steps=(--steps 100 --warmup 20); run_steps=""
  seeds=0,1,2,3,4; jobs=10; limits=(130 100 45 270); precisions=(32-true)
  graphs="runner=cuda_graphs"
fi
{
  echo "# GPU check (issue #12)"
  echo
  echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(date -u +%F); SMOKE=${SMOKE:-0}"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
  echo
} > "$report"

echo "== 1. steps/s of every method (bench.py)"
timeout "${limits[0]}" "$py" scripts/bench.py --device "$device" --precision "${precisions[@]}" --paths resident \
  --methods dann source_only adda wdgrl dsn ddc dan coral daan target_only --pairs mnist_mnistm "${bench_steps[@]}" --updates-per-step 1 8 --graphs off on \
  --out "$OUT/bench.md" > "$logs.bench.log" 2>&1
echo "bench.py exit $?" | tee -a "$report"
[ -f "$OUT/bench.md" ] && sed 1d "$OUT/bench.md" >> "$report"

for path in eager graphs; do
  echo "== 2. one full DANN run, updates_per_step=8, $path"
  fast=""; limit=${limits[1]}
  [ $path = graphs ] && fast=$graphs && limit=${limits[2]}
  start=$(date +%s%N)
  timeout "$limit" "$py" -m da_bench.train method=dann data=mnist_mnistm seed=0 \
    $trainer $run_steps updates_per_step=8 $fast paths.log_dir="$logs/single_$path" \
    > "$logs.single_$path.log" 2>&1
  rc=$?
  wall=$(( ($(date +%s%N) - start) / 1000000 ))
  metrics=$(find "$logs/single_$path" -name metrics.json | head -n 1)
  acc=$([ -n "$metrics" ] && "$py" -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"test/tgt_acc {m['test/tgt_acc']:.4f}, training wall_s {m['wall_s']}\")" "$metrics")
  printf '\n## One DANN run (%s updates_per_step=8 %s)\n\nexit %s; process wall time %s ms; %s; %s\n' \
    "$trainer $run_steps" "$fast" "$rc" "$wall" "$acc" "$(grep -o 'cuda_graphs: .*' "$logs.single_$path.log" | head -n 1)" \
    | tee -a "$report"
done

echo "== 3. DANN at 8 updates per step, eager and fast path, 5 seeds, packed"
start=$(date +%s%N)
timeout "${limits[3]}" "$py" scripts/run_packed.py mnistm --jobs "$jobs" --log-dir "$logs/packed" seed=$seeds $trainer \
  $run_steps method=dann updates_per_step=8 paths.log_dir="$logs/grid" \
  --also "$graphs" > "$logs.packed.log" 2>&1
rc=$?
wall=$(( ($(date +%s%N) - start) / 1000000 ))
printf '\n## Packed grid\n\nexit %s; %s at a time; wall time %s ms; %s\n' "$rc" "$jobs" "$wall" "$(tail -n 1 "$logs.packed.log")" \
  | tee -a "$report"
if find "$logs/grid" -name metrics.json | grep -q .; then
  "$py" -m da_bench.tools.make_tables "$logs/grid" --table mnistm --name mnistm_gpu --out "$OUT" > /dev/null 2>&1 \
    && sed -n '/^## Model selection: last_step/,/^## Model selection: src_acc/p' "$OUT/mnistm_gpu.md" | sed '$d' >> "$report"
fi
tar czf "$OUT/runs.tar.gz" -C "$logs" . 2>/dev/null
cat "$report"
