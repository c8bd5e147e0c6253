# One call on the lent GPU: resume training from .train/ckpt for the given seconds on short
# contexts, export the model, and run losa eval on it (see train/README.md). Returns the
# checkpoint parts, the training log and the eval results under $OUT (7 files).
#   bash train/gpu_train_and_eval.sh SECONDS [train.py flags...]
set -o pipefail
seconds=$1; shift
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .train/wheels/*.whl && export PYTHONPATH=/tmp/site || exit
python3 train/train.py --losa .train/losa --out $OUT/ckpt --resume .train/ckpt --log $OUT/train.jsonl \
  --time-budget "$seconds" "$@" 2>&1 | grep -v '^{'
tail -2 $OUT/train.jsonl
python3 train/export.py --checkpoint $OUT/ckpt --out /tmp/model || exit
.train/losa eval --model /tmp/model --device cuda --lengths 1024 4096 8192 --samples 8 --block-size 16 \
  --budgets 128 256 512 1024 --k-active 0 --tau 0.5 --json $OUT/eval.json --png $OUT/eval.png 2>&1 | tee $OUT/eval.txt | tail -30
