#!/usr/bin/env bash
# The packs' device check for a lent GPU machine (issue 12), about 8 minutes on one H100/H200:
#   1. the pack tests on CUDA (float64 equal to rounding; fp32/bf16 within kernel noise);
#   2. `unettui bench --pack 1,4,8,16` for fp32 and bf16 at 64x64 and 128x128, three times each;
#   3. the default job end to end with --pack auto and --pack off (timed);
#   4. the seed study (`unettui study new --template seed`) with --pack auto, then --pack off for as long as the
#      packs took (capped): runs finished per minute each (the whole study without packs would take too long);
#   5. a 16-experiment sweep: --pack off, --workers 4 --devices cuda:0 --threads 1, --pack 16, and
#      --workers 2 --devices cuda:0 --threads 1 --pack 8 (timed);
# then one summary block. Run it from the repository root:
#   bash scripts/gpu_pack_check.sh            # on the GPU machine ($OUT: where the logs go)
#   PACK_CHECK_TINY=1 bash scripts/gpu_pack_check.sh   # the same commands on the CPU with tiny settings (a dry run)
# Like scripts/gpu_check.sh it installs the wheels in .whl/ (textual, typer, tomli-w, ... where the machine lacks
# them) into /tmp/site first.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
U="$PY -m unettui"
REPO=$PWD
SUMMARY="$OUT/pack_summary.txt"; : > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
now() { date +%s.%N; }
secs() { $PY -c "print(f'{$2 - $1:.1f}')"; }
done_runs() { $PY - "$1" <<'EOF'
import json, pathlib, sys
n = 0
for p in pathlib.Path(sys.argv[1], "runs").glob("*/status.json"):
    try:
        n += json.loads(p.read_text()).get("state") == "done"
    except Exception:
        pass
print(n)
EOF
}

if [ -n "${PACK_CHECK_TINY:-}" ]; then  # the CPU dry run: every command, tiny sizes, short limits
  DEV=cpu; WDEV=cpu; SIZES="32"; PACKS="1,2"; BENCH="--steps 2 --rounds 1 --base-channels 4 --threads 1"
  REPS=1; TESTK="pack_key or diverging"; CAP=40; SWEEP_EPOCHS=1
  AUTO=8  # auto is off on the CPU: the dry run packs explicitly, to run the same code
  TINY_KEYS='num_images = 16\nimage_size = 32\nbase_channels = 4\ndepth = 2\nbatch_size = 4\ndevice = "cpu"\n'
else
  DEV=cuda; WDEV=cuda:0; SIZES="64 128"; PACKS="1,4,8,16"; BENCH=""; REPS=3; TESTK="cuda"; CAP=150; SWEEP_EPOCHS=5
  AUTO=auto
  TINY_KEYS=''
fi

echo "== machine"
nvidia-smi -L 2>/dev/null || echo "(no nvidia-smi)"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" | tee -a "$SUMMARY"

echo "== 1. pack tests on $DEV"
timeout 300 $PY -m pytest -q -p no:cacheprovider -k "$TESTK" tests/unit/test_pack.py tests/unit/test_pack_train.py 2>&1 | tail -6 | tee "$OUT/pack_tests.txt"
say "tests: $(tail -1 "$OUT/pack_tests.txt")"

echo "== 2. bench --pack $PACKS"
for size in $SIZES; do
  steps="--steps 20 --rounds 3"; [ "$size" -ge 128 ] && steps="--steps 10 --rounds 2"
  [ -n "${PACK_CHECK_TINY:-}" ] && steps=""
  for amp in off bf16; do
    for rep in $(seq 1 $REPS); do
      f="$OUT/bench_${size}_${amp}_${rep}.txt"
      timeout 200 $U bench --device $DEV --pack $PACKS --image-size $size --amp $amp $steps $BENCH 2>&1 | tee "$f"
      say "bench ${size}x${size} amp $amp run $rep: $(tail -1 "$f")"
    done
  done
done

echo "== 3. the default job, --pack auto vs --pack off"
for mode in $AUTO off; do
  d=/tmp/pack_default_$mode; rm -rf "$d"; mkdir -p "$d"
  if [ -n "${PACK_CHECK_TINY:-}" ]; then
    printf '[defaults]\n%bepochs = 2\n\n[[sweep]]\nid = "opt"\noptimizer = ["adam", "sgd", "adagrad"]\n' "$TINY_KEYS" > "$d/experiments.toml"
  else
    cp experiments.toml "$d/"
  fi
  t0=$(now)
  ( cd "$d" && timeout 300 $U run --headless --plain --pack $mode ) > "$OUT/default_$mode.txt" 2>&1
  t1=$(now)
  grep -E "in a pack|finished" "$OUT/default_$mode.txt" | tail -5
  say "default job --pack $mode: $(secs $t0 $t1) s, $(done_runs "$d") runs done ($(grep -c 'in a pack' "$OUT/default_$mode.txt") packed)"
  ( cd "$d" && $U results ) > "$OUT/default_${mode}_results.txt" 2>&1
done

echo "== 4. the seed study, --pack auto, then --pack off for as long"
d=/tmp/pack_seed_auto; rm -rf "$d"; mkdir -p "$d"
$U study new --template seed -p "$d" > /dev/null
if [ -n "${PACK_CHECK_TINY:-}" ]; then
  sed -i -e 's/^num_images = 96/num_images = 24/' -e 's/^image_size = 64/image_size = 32/' \
    -e 's/^base_channels = 16 /base_channels = 4 /' -e 's/^depth = 4/depth = 2/' -e 's/^batch_size = 8/batch_size = 4/' \
    -e 's/^epochs = 12/epochs = 2/' -e 's/min_epochs = 6/min_epochs = 1/' \
    -e 's/^dataset = "synthetic:ventricle"/dataset = "synthetic:ventricle"\ndevice = "cpu"/' "$d/experiments.toml"
fi
rm -rf /tmp/pack_seed_off; cp -r "$d" /tmp/pack_seed_off
t0=$(now)
( cd "$d" && timeout $CAP $U run --headless --plain --pack $AUTO ) > "$OUT/seed_auto.txt" 2>&1
t1=$(now)
ta=$(secs $t0 $t1); na=$(done_runs "$d")
cap_off=$($PY -c "print(max(5, round($ta)))")
( cd /tmp/pack_seed_off && timeout $cap_off $U run --headless --plain --pack off ) > "$OUT/seed_off.txt" 2>&1
no=$(done_runs /tmp/pack_seed_off)
say "seed study --pack $AUTO: $na runs done in $ta s (cap $CAP s); --pack off: $no runs done in the same $cap_off s"
( cd "$d" && $U study show seed ) > "$OUT/seed_auto_show.txt" 2>&1

echo "== 5. a 16-experiment sweep: workers against packs"
for mode in "off" "workers4" "pack16" "workers2pack8"; do
  d=/tmp/pack_sweep_$mode; rm -rf "$d"; mkdir -p "$d"
  printf '[defaults]\n%bepochs = %s\n[[sweep]]\nid = "w"\nseed = [%s]\n' "$TINY_KEYS" "$SWEEP_EPOCHS" \
    "$(seq -s, 0 15)" > "$d/experiments.toml"
  case $mode in
    off) args="--pack off";;
    workers4) args="--workers 4 --devices $WDEV --threads 1 --pack off";;
    pack16) args="--pack 16";;
    workers2pack8) args="--workers 2 --devices $WDEV --threads 1 --pack 8";;
  esac
  t0=$(now)
  ( cd "$d" && timeout 300 $U run --headless --plain $args ) > "$OUT/sweep_$mode.txt" 2>&1
  t1=$(now)
  say "16-run sweep ($SWEEP_EPOCHS epochs each) $args: $(secs $t0 $t1) s, $(done_runs "$d") done"
done

echo
echo "================ pack check summary ================"
cat "$SUMMARY"
echo "(logs in $OUT)"
