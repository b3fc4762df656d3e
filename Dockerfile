# One image for every logad process: `logad worker` (the Faust worker), `logad train`, `logad notify`.
#
#   docker build -t logad .                                    # torch from the PyTorch CPU wheel index
#   cp ../shared/wheels/torch-*.whl deploy/wheels/ && docker build -t logad .   # offline: that wheel
#   docker build --build-arg TORCH_INDEX_URL=https://mirror.example/cpu -t logad .
#   podman build --format docker -t logad .                   # OCI format would ignore SHELL
#
# PyPI's default torch wheel for Linux pulls the CUDA libraries (GBs); the worker only needs the CPU
# build (inference runs in Triton), so the image installs torch from a CPU-only source first.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python -m venv /opt/logad
ENV PATH=/opt/logad/bin:$PATH
WORKDIR /src
# A torch wheel in deploy/wheels/ (README there) wins over the index: builds without the network.
COPY deploy/wheels/ /tmp/wheels/
# DL3013: "$wheel" is a file (its version is in its name); the index install is pinned.
# hadolint ignore=DL3013
RUN set -eu; \
    wheel="$(find /tmp/wheels -name 'torch-*.whl' | head -n 1)"; \
    if [ -n "$wheel" ]; then \
        pip install --no-cache-dir --find-links /tmp/wheels "$wheel"; \
    else \
        pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"; \
    fi
COPY pyproject.toml README.md ./
COPY pipeline/ pipeline/
COPY agents/ agents/
RUN pip install --no-cache-dir --find-links /tmp/wheels . \
    && find /opt/logad -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="logad" \
      org.opencontainers.image.description="Streaming log anomaly detection: Faust worker, trainer, alert notifier"
# Absolute paths, so a process never depends on its working folder; the folders are volumes in
# deploy/compose.yaml and deploy/k8s/.
ENV PATH=/opt/logad/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOGAD_STATE_DIR=/var/lib/logad \
    LOGAD_MODEL_REPO=/models \
    LOGAD_DATA_DIR=/data \
    LOGAD_WEB_HOST=0.0.0.0 \
    LOGAD_WEB_PORT=6066
RUN groupadd --system --gid 10001 logad \
    && useradd --system --uid 10001 --gid logad --home-dir /var/lib/logad --shell /usr/sbin/nologin logad \
    && mkdir -p /var/lib/logad /models /data \
    && chown logad:logad /var/lib/logad /models
COPY --from=build /opt/logad /opt/logad
WORKDIR /var/lib/logad
USER 10001:10001
EXPOSE 6066
ENTRYPOINT ["logad"]
CMD ["worker"]
