# One training call on the lent GPU (see train/README.md): restores the compile cache, trains,
# and returns the checkpoint, the log and the compile cache under $OUT.
set -o pipefail
export TORCHINDUCTOR_CACHE_DIR=/tmp/losa-inductor TRITON_CACHE_DIR=/tmp/losa-inductor/triton PYTHONUNBUFFERED=1
mkdir -p $TORCHINDUCTOR_CACHE_DIR
[ -f .train/inductor.tgz ] && tar xzf .train/inductor.tgz -C /tmp
RESUME=""; [ -f .train/ckpt.part0 ] && RESUME="--resume .train/ckpt"
python3 train/train.py --losa .train/losa --out $OUT/ckpt $RESUME --log $OUT/train.jsonl "$@" 2>&1 | tee $OUT/train.out | grep -v '^{'
tail -3 $OUT/train.jsonl
tar czf $OUT/inductor.tgz -C /tmp losa-inductor && ls -la $OUT
