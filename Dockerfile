# complete-bridge container image.
#
#   docker build -t complete-bridge .
#   docker run --rm -p 8080:8080 complete-bridge
#
# Configured only through BRIDGE_* environment variables and, optionally, a TOML file
# mounted read-only and named by BRIDGE_CONFIG:
#
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/bridge.toml:/etc/complete-bridge/bridge.toml:ro" \
#     -e BRIDGE_CONFIG=/etc/complete-bridge/bridge.toml complete-bridge
#
# Both stages use the same base tag, so the venv's interpreter path (/usr/local/bin)
# is valid in the final stage. For fully reproducible builds pin it by digest too
# (python:3.11-slim-bookworm@sha256:...).

FROM python:3.11-slim-bookworm AS builder

# A venv without pip: the base image's pip installs into it (--python), so the
# final image carries the bridge and its runtime dependencies and nothing else.
# pip compiles the .pyc files here: the running container's filesystem is read-only.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN python -m venv --without-pip /opt/complete-bridge \
    && pip --python /opt/complete-bridge/bin/python install --no-cache-dir .


FROM python:3.11-slim-bookworm

# A fixed numeric UID/GID: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin bridge

COPY --from=builder /opt/complete-bridge /opt/complete-bridge

ENV PATH=/opt/complete-bridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_HOST=0.0.0.0 \
    BRIDGE_LOG_FORMAT=json

USER 10001:10001
EXPOSE 8080

# The slim image has no curl: the stdlib asks /healthz. It follows BRIDGE_PORT; a port
# set only in the config file needs a matching --health-cmd.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BRIDGE_PORT', '8080'), timeout=2)"]

# The bridge runs as PID 1 and handles SIGTERM itself: it fails /readyz, finishes
# in-flight requests for up to BRIDGE_DRAIN_TIMEOUT seconds (default 30), then exits.
# Give `docker stop` more than that: `docker stop -t 40` or compose's stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["complete-bridge"]
CMD ["serve"]
