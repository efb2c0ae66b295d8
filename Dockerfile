# syntax=docker/dockerfile:1
# interlink: one shard per container.  docker build -t interlink:0.1.0 .
# The install steps live in deploy/image/install.sh; `make image-check` runs the same script into
# a fresh venv on every `make test` (no container runtime is needed to test them).
ARG PYTHON_IMAGE=python:3.12-slim

# -- 1. wheels: interlink and every dependency, built where a compiler may be needed ------------
FROM ${PYTHON_IMAGE} AS wheels
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY deploy/image/install.sh /usr/local/bin/interlink-install
COPY pyproject.toml setup.cfg README.md ./
COPY interlink ./interlink
RUN interlink-install wheels /src /wheels

# -- 2. runtime: a venv installed from those wheels only, run as a non-root user -----------------
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY deploy/image/install.sh /usr/local/bin/interlink-install
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    interlink-install install /wheels /opt/interlink \
 && groupadd --system --gid 10001 interlink \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/interlink --no-create-home \
        --shell /usr/sbin/nologin interlink \
 && mkdir -p /var/lib/interlink \
 && chown 10001:10001 /var/lib/interlink \
 && chmod 0700 /var/lib/interlink

# Bytecode was compiled at install time; the root file system may be read-only at run time.
ENV PATH=/opt/interlink/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INTERLINK_HOST=0.0.0.0 \
    INTERLINK_PORT=8080 \
    INTERLINK_DATA_DIR=/var/lib/interlink

# Without INTERLINK_REDIS_URL (one shard only) the embedded Valkey, the generated admin token and
# master key live here: mount a volume to keep them. With an external Redis and both secrets set,
# nothing here must survive a restart.
VOLUME ["/var/lib/interlink"]
WORKDIR /var/lib/interlink
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
# SIGTERM drains the shard (in-flight requests, actors, last acknowledgements) within
# INTERLINK_SHUTDOWN_TIMEOUT, then it exits 0: give the container more than that to stop
# (docker stop --time, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INTERLINK_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["interlink"]
CMD ["serve"]
