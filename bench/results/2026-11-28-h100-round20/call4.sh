#!/usr/bin/env bash
# Session 20, call 4 (issue 7): the whole GPU suite and the runtime tests on d3cb2e8 (the wgmma
# path as committed; call 3's softmax change was slower and is not kept).
set -u
O=$OUT/c4; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 40 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 260 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; note gpu_tests $?
cat $O/summary.txt; grep -h 'PASSED\|FAILED  \]\|NOTE\|SKIPPED \]' $O/*.log | sort | uniq -c | head -20
cd $OUT && tar czf c4.tgz c4 && rm -rf c4
