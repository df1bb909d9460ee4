#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored: wheels are never committed) the pure-Python wheels that a lent GPU machine lacks
# for the device checks (scripts/gpu_pack_check.sh, scripts/gpu_check.sh); those scripts install them with
# `pip install --no-index --no-deps --target /tmp/site .whl/*.whl` before anything else. Run it here, once, from the
# repository root (it needs the package index); then name `.whl` in the run tool's `carry`.
#
# The GPU machine's image ('cuda', Python 3.12, torch 2.11) already holds numpy, filelock, imageio, pillow, matplotlib,
# rich, typer, click, pytest and pytest-timeout (see /work/.library/device/KINDS.md); the short pack check needs no
# more than those. The wheels below are for the CLI and TUI the longer checks start (tifffile: folders of TIFFs). typer is not carried: 0.29
# needs pydantic (compiled), and the image has a typer. orjson is optional (unettui reads JSON without it).
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  --platform any -d .whl \
  textual==8.2.8 mdit-py-plugins==0.7.0 linkify-it-py==2.2.0 uc-micro-py==1.0.3 platformdirs==4.14.9 tomlkit==0.15.3 \
  tifffile==2026.3.3
ls -l .whl
