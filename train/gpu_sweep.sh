# Several training runs at once on the one lent GPU (a model of a few million parameters leaves
# an H100 mostly idle, so N runs cost about the time of one). Each line of the config file is
# "NAME train.py-flags..."; a run resumes from .train/NAME.part* when present, else from
# .train/$RESUME_FROM.part* when that is set. Returns every run's
# log (logs.tgz) and the checkpoint of the run named by $KEEP, or of the run with the highest final
# content-word accuracy summed over the suite's tasks (at most 8 files come back from a call, so only one checkpoint does).
#   [EVAL_LENGTHS="4096 8192"] bash train/gpu_sweep.sh SECONDS CONFIG_FILE
set -o pipefail
seconds=$1; config=$2
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
rm -rf /tmp/sweep && mkdir -p /tmp/sweep  # a warm machine keeps /tmp from the last call
# The binary may travel xz-compressed (.train/losa.xz, a quarter of the bytes) when a large
# checkpoint needs the carry's room.
[ -f .train/losa ] || { [ -f .train/losa.xz ] && xz -dkc .train/losa.xz > .train/losa && chmod +x .train/losa; }
# safetensors (train.py --init, export.py) is not on the GPU machine: its wheel travels in .train/wheels.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .train/wheels/*.whl &&
  export PYTHONPATH=/tmp/site
while read -r name flags; do
  [ -z "$name" ] && continue
  resume=""
  if [ -f ".train/$name.part0" ]; then resume="--resume .train/$name"
  elif [ -n "$RESUME_FROM" ]; then resume="--resume .train/$RESUME_FROM"; fi  # one checkpoint fits the carry limit
  python3 train/train.py --losa .train/losa --out "/tmp/sweep/$name" $resume --log "/tmp/sweep/$name.jsonl" \
    --time-budget "$seconds" $flags > "/tmp/sweep/$name.out" 2>&1 &
done < "$config"
wait
python3 - "$config" <<'PY' > /tmp/sweep/summary.txt
import json, os, sys
best = None
for line in open(sys.argv[1]):
    if not line.split():
        continue
    name = line.split()[0]
    try:
        last = [json.loads(l) for l in open(f"/tmp/sweep/{name}.jsonl")][-1]
    except (OSError, IndexError):
        print(f"{name}: no log"); continue
    print(name, json.dumps(last))
    acc = sum(v for k, v in last["content_accuracy"].items() if k != "copy")  # the suite's tasks only
    if best is None or acc > best[1]:
        best = (name, acc)
print("best", os.environ.get("KEEP") or best[0])
PY
cat /tmp/sweep/summary.txt
keep=$(awk '/^best/{print $2}' /tmp/sweep/summary.txt)
for p in /tmp/sweep/$keep.part*; do cp "$p" "$OUT/$keep.${p##*.}"; done
tail -n 5 /tmp/sweep/*.out | grep -v '^{' | tail -n 40
# With EVAL_LENGTHS set: export the kept run and score every mode on it (eval.json/png/txt).
if [ -n "$EVAL_LENGTHS" ]; then
  python3 train/export.py --checkpoint "/tmp/sweep/$keep" --out /tmp/model &&
    .train/losa eval --model /tmp/model --device cuda --lengths $EVAL_LENGTHS --samples "${EVAL_SAMPLES:-8}" \
      --block-size "${EVAL_BLOCK:-16}" --budgets 128 256 512 1024 --k-active 0 --tau 0.5 \
      --json "$OUT/eval.json" --png "$OUT/eval.png" 2>&1 | tee "$OUT/eval.txt" | tail -n 40
fi
tar czf "$OUT/logs.tgz" -C /tmp/sweep $(cd /tmp/sweep && ls *.jsonl *.out summary.txt)
ls -la "$OUT"
