# Every OpenCouch Voice Python service, one image per SERVICE (its directory under services/).
# The build context is the repository root:
#   docker build -f docker/python-service.Dockerfile --build-arg SERVICE=tools -t opencouch-tools .
# Base images are build arguments: python:3.11-slim by default; scripts/local-bases builds a
# Python base from Debian packages for machines with no container registry.
#
# Plain Dockerfile instructions only (no RUN --mount): Debian's docker.io has no buildx, and
# Compose then builds with the classic builder. Layer order keeps rebuilds cheap all the same.
# Both stages use it: the environment built in the first runs on the second's Python.
ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtual environment holding this service, its libraries and locked dependencies -
FROM ${PYTHON_IMAGE} AS build
# scripts/compose-e2e prunes old build stages, which the classic builder keeps as its cache.
LABEL org.opencouch.stage=build
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<directory under services/>" >&2; exit 1; }
# uv from PyPI, pinned, into a venv of its own: no other registry, and none of it in the image.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --quiet "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Locked dependencies first, from the manifests alone, so this layer is rebuilt only when a
# pyproject or the lock changes. uv resolves the whole workspace, so every member's manifest
# must be here (tests/test_compose_config.py checks this list against the workspace).
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/runtime/pyproject.toml libs/runtime/
COPY libs/testing/pyproject.toml libs/testing/
COPY services/finalizer/pyproject.toml services/finalizer/
COPY services/memory/pyproject.toml services/memory/
COPY services/realtime-emulator/pyproject.toml services/realtime-emulator/
COPY services/tools/pyproject.toml services/tools/
COPY services/voice-gateway/pyproject.toml services/voice-gateway/
COPY services/web/pyproject.toml services/web/
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace --package "opencouch-${SERVICE}"

# Then our own code: the shared libraries and this service, installed as wheels (not linked to
# the source), so the final image needs the environment alone. The start command runs the
# module named after the directory, - as _ (voice-gateway: python -m opencouch.voice_gateway).
COPY libs/ libs/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-editable --package "opencouch-${SERVICE}" \
    && printf '#!/bin/sh\nexec python -m opencouch.%s "$@"\n' "$(echo "${SERVICE}" | tr - _)" \
       > /app/.venv/bin/opencouch-service \
    && chmod 0755 /app/.venv/bin/opencouch-service

# -- runtime: the base image, what the service needs from Debian, the environment, config/ ----
FROM ${PYTHON_IMAGE}
ARG SERVICE
# Debian packages the service needs at run time, e.g. espeak-ng for the emulator's voice.
ARG APT_PACKAGES=""
RUN if [ -n "${APT_PACKAGES}" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends ${APT_PACKAGES} \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin opencouch
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# Files a deployment may point a service at (e.g. emulator scenarios); read-only for the service.
COPY config/ /app/config/
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENCOUCH_SERVICE=${SERVICE}
USER opencouch
# Health checks live in docker-compose.yml: each service's differs, and orchestrators other than
# Compose bring their own probes.
CMD ["opencouch-service"]
