#!/usr/bin/env bash
# Times the README's two quick-start commands on a clean clone, N times (default 3), and prints one line per
# repetition and the ranges, for docs/benchmarks.md (the README quotes that block):
#   1. pip install -e ".[dev]" && unettui run --headless   (in a new virtual environment, PyTorch's CPU build first:
#      TORCH_SPEC, default torch==2.13.0, which this project's machines install from their disk; elsewhere use
#      TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu")
#   2. python -m pytest -q
# Run from the repository root: bash scripts/time_quickstart.sh [N]. It clones HEAD (committed work only) into a
# temporary folder each time and removes it afterwards.
set -euo pipefail
N=${1:-3}
REPO=$(git rev-parse --show-toplevel)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD)
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.0f}')"; }
fmt() { python3 -c "s=int($1); print(f'{s // 60}m{s % 60:02d}s')"; }
runs=(); tests=(); installs=()
for i in $(seq 1 "$N"); do
  dir=$(mktemp -d /tmp/quickstart.XXXXXX)
  git clone -q "$REPO" "$dir/unettui"
  cd "$dir/unettui"
  python3 -m venv .venv
  . .venv/bin/activate
  t0=$(now)
  # shellcheck disable=SC2086
  python -m pip install -q $TORCH_SPEC >/dev/null 2>&1
  t1=$(now)
  python -m pip install -q -e ".[dev]" >/dev/null 2>&1
  t2=$(now)
  unettui run --headless --plain > run.log 2>&1
  t3=$(now)
  python -m pytest -q -p no:cacheprovider > tests.log 2>&1 || { tail -5 tests.log; echo "tests failed"; exit 1; }
  t4=$(now)
  deactivate
  installs+=("$(secs "$t1" "$t2")"); runs+=("$(secs "$t2" "$t3")"); tests+=("$(secs "$t3" "$t4")")
  echo "run $i: torch $(secs "$t0" "$t1") s, pip install -e .[dev] $(secs "$t1" "$t2") s, unettui run --headless" \
       "$(fmt "$(secs "$t2" "$t3")") ($(grep -c ': done' run.log) runs done), python -m pytest -q" \
       "$(fmt "$(secs "$t3" "$t4")") ($(tail -1 tests.log))"
  cd /; rm -rf "$dir"
done
range() { printf '%s\n' "$@" | sort -n | sed -n '1p;$p' | tr '\n' ' '; }
read -r lo hi <<<"$(range "${runs[@]}")"; read -r tlo thi <<<"$(range "${tests[@]}")"
read -r ilo ihi <<<"$(range "${installs[@]}")"
echo "commit $COMMIT, $(date -u +%Y-%m-%d), $(nproc) cores, Python $(python3 -c 'import platform; print(platform.python_version())'), $TORCH_SPEC:"
echo "  pip install -e \".[dev]\": ${ilo}-${ihi} s; unettui run --headless: $(fmt "$lo")-$(fmt "$hi");" \
     "python -m pytest -q: $(fmt "$tlo")-$(fmt "$thi") ($N runs each, worst last)"
