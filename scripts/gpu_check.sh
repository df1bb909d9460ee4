#!/usr/bin/env bash
# The device check for a lent GPU machine (docs/development.md, "Checks on a GPU"): the CUDA-only tests,
# the benchmark on CUDA (fp32 vs AMP), the default job on CUDA, then the unit and CLI suites.
# Expects wheels for packages the machine lacks in .whl/ (textual, tomlkit, ...), and $OUT.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
U="python3 -m unettui"
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
echo "== CUDA-only tests"
python3 -m pytest -q -p no:cacheprovider -k "cuda or amp or gpu" tests/unit 2>&1 | tail -15
echo "== bench, default size"
$U bench --device cuda --steps 50 --rounds 3 2>&1 | tee "$OUT/bench_small.txt"
echo "== bench, 256 px, batch 16, full-width UNet (base 64)"
$U bench --device cuda --steps 30 --rounds 3 --image-size 256 --batch-size 16 --base-channels 64 2>&1 | tee "$OUT/bench_big.txt"
echo "== default job on CUDA"
rm -rf /tmp/proj && mkdir /tmp/proj && cp experiments.toml /tmp/proj/
( cd /tmp/proj && t0=$SECONDS && $U run --headless 2>&1 | grep -v "^  " | tail -20; echo "default job wall $((SECONDS - t0)) s"; $U results ) 2>&1 | tee "$OUT/default_job.txt"
echo "== unit + cli suites on the GPU machine"
timeout 200 python3 -m pytest -q -x -p no:cacheprovider tests/unit tests/cli 2>&1 | tail -15
