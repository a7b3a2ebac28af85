#!/usr/bin/env bash
# The engine benchmarks (scenarios 1, 2 and 5 at the engine) on a lent GPU machine, which has no network and
# takes at most 64 MiB per transfer, the repository's tracked files (~31 MB) included. So everything else
# travels as one archive in 30 MiB chunks: vLLM 0.24.0 (../shared/gpu/prepare.sh's .gpu/a..d), the settings
# wheels (.whl/, scripts/cuda_smoke.sh pack) and SmolLM2's config and tokenizer. Put httptools' wheel in .whl/
# too: the machine's image has uvloop but not httptools, which a real vLLM install brings (uvicorn[standard]);
# without it both servers of `serve` stream every token through h11 (check `environment.versions` in the JSON).
# Models are made there with random weights in SmolLM2-135M's shape and in a ~1.2B shape of the same
# architecture: speed does not depend on the weights' values, and every request runs to a fixed length.
#
#   here, once:  bash benchmarks/gpu_bench.sh pack
#   there, back to back (the machine goes cold ~30 s after a call):
#     carry .gpu/s00 … .gpu/s04, one per call:  mkdir -p /tmp/pl && cp .gpu/s0K/* /tmp/pl/
#     carry .gpu/s05:  cp .gpu/s05/* /tmp/pl/ && bash benchmarks/gpu_bench.sh unpack && bash benchmarks/gpu_bench.sh run 135m
#     no carry:        bash benchmarks/gpu_bench.sh run 1b
#   results: $OUT/{engine,hotswap,compare}-SIZE.json and engine-SIZE.png
#   scale-out, after unpack:  REPLICAS=0,1 bash benchmarks/gpu_bench.sh replicas 135m  → $OUT/replicas-135m-01.json
#   service vs plain vLLM, after unpack:  bash benchmarks/gpu_bench.sh serve 135m  → $OUT/serve-135m-c64.json, -c256
#     (CONCURRENCY=64,256, PROMPTS=2048 and REPEATS=3 by default, both workloads on the same two servers,
#     which share the GPU, 0.4 each; PROFILE=1: py-spy profiles of both front ends in $OUT/profile-SIZE, when
#     the py-spy wheel was packed from .whl/)
#     vLLM's OpenAI server also needs model-hosting-container-standards (+ jmespath, supervisor): pip download
#     them into .gpu/m, carry it with .gpu/s05 and `pip install --no-index --no-deps --target /tmp/site .gpu/m/*`
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
pack)
  for p in /.gpu/ /.whl/; do grep -qxF "$p" .git/info/exclude || echo "$p" >> .git/info/exclude; done
  base=${BASE:-.cache/tests/models/SmolLM2-135M-Instruct}
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/p/like" "$work/p/whl"
  for f in config.json tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json; do
    cp "$base/$f" "$work/p/like/"
  done
  cat .gpu/a/part.* .gpu/b/part.* .gpu/c/part.* > "$work/p/vllm.tar.xz"
  cp .gpu/d/whl/*.whl .whl/*.whl "$work/p/whl/"
  (cd "$work/p" && tar cf ../payload.tar .)
  rm -rf .gpu/s[0-9]*
  (cd "$work" && split -b 30M -d payload.tar chunk.)
  for chunk in "$work"/chunk.*; do mkdir -p ".gpu/s${chunk##*.}" && mv "$chunk" ".gpu/s${chunk##*.}/"; done
  du -sh .gpu/s[0-9]*
  ;;
unpack)
  cat /tmp/pl/chunk.* | tar xf - -C /tmp/pl
  mkdir -p /tmp/site
  xz -dc -T0 /tmp/pl/vllm.tar.xz | tar xf - -C /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/pl/whl/*.whl
  ;;
run | replicas | serve)
  mode=$1 size=${2:?run|replicas|serve 135m|1b}
  # As ../shared/gpu/device-install.sh: flashinfer is not carried, so vLLM's PyTorch sampler.
  export PYTHONPATH=/tmp/site:$PWD LORA_ROUTER_DATA_DIR=/tmp/bench PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
  python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__, torch.cuda.get_device_name(0))"
  out=${OUT:-/tmp/bench/out}
  mkdir -p "$out"
  model=/tmp/bench/models/$size
  case "$size" in
  135m) overrides='{}' ;;
  1b) overrides='{"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64}' ;;
  *) echo "unknown size $size"; exit 64 ;;
  esac
  [ -d "$model-adapters" ] || python3 - "$model" "$overrides" <<'PY'
import json, sys, time
from pathlib import Path
from commands.bench.fixtures import describe_model, make_lora_adapters, make_random_model
started = time.perf_counter()
model = make_random_model(Path("/tmp/pl/like"), Path(sys.argv[1]), **json.loads(sys.argv[2]))
make_lora_adapters(model, Path(sys.argv[1] + "-adapters"), 16, rank=16)
print(describe_model(model), f"made in {time.perf_counter() - started:.0f}s", flush=True)
PY
  cli() { python3 -c "from commands.main import app; app()" "$@"; }
  if [ "$mode" = serve ]; then
    # Both servers started once for every concurrency, one after the other on the GPU; the client runs
    # interleaved. 2048 prompts a run: at 512 a run lasted ~7 s, of which the last wave's tail at falling
    # concurrency was a noticeable part. PROFILE=1: py-spy (carried as a wheel) profiles both front ends
    # during their last run (off by default, so that no measured run has a profiler attached).
    export PATH=/tmp/site/bin:$PATH
    levels=${CONCURRENCY:-64,256}
    profile=()
    [ "${PROFILE:-0}" = 1 ] && profile=(--profile "$out/profile-$size")
    LORA_ROUTER_BASE_MODEL_NAME=$size cli bench serve --base-model-dir "$model" --adapters-dir "$model-adapters" \
      --adapters 4 --num-prompts "${PROMPTS:-2048}" --concurrency "$levels" --input-len 128 --output-len 128 \
      --repeats "${REPEATS:-3}" --gpu-memory-utilization 0.4 "${profile[@]}" --out "$out/serve-$size.json"
    exit
  fi
  if [ "$mode" = replicas ]; then
    # Scale-out on one GPU: the embedded engine beside 1 (or 2) `vllm serve` replicas behind a router, all
    # sharing it (0.4 each: two engines at once), measured in turn: what the remote hop costs next to a GPU.
    counts=${REPLICAS:-0,1}
    LORA_ROUTER_BASE_MODEL_NAME=$size cli bench replicas --replicas "$counts" --gpu-memory-utilization 0.4 \
      --base-model-dir "$model" --adapters-dir "$model-adapters" --adapters 4 --num-prompts 512 \
      --concurrency 64 --input-len 128 --output-len 128 --repeats "${REPEATS:-3}" \
      --out "$out/replicas-$size-${counts//,/}.json"
    exit
  fi
  common=(--base-model-dir "$model" --adapters-dir "$model-adapters" --prompt-tokens 128 --output-tokens 128)
  cli bench engine "${common[@]}" --adapter-counts 0,1,2,4,8,16 --concurrency 1,8,64 --waves 4 \
    --out "$out/engine-$size.json"
  cli bench hotswap "${common[@]}" --adapter-counts 0,1,16 --concurrency 64 --waves 1 \
    --out "$out/hotswap-$size.json"
  cli bench compare "$out/engine-$size.json" "$out/hotswap-$size.json" \
    --out "$out/compare-$size.json" --plot "$out/engine-$size.png"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu-$size.txt" || true
  ;;
*)
  sed -n '2,15p' "$0"; exit 64
  ;;
esac
