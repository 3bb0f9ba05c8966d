# The dc-overview app image: the web app and API (`dc-overview serve`,
# aiohttp) and the CLI, run by the stack as the `dc-overview` container.
#
#   docker build -t ghcr.io/cryptolabsza/dc-overview:2.0.0 .
#   docker build --build-arg BASE=local/dc-python:bookworm -t local/dc-overview:test .
#
# BASE is any Debian-like image with python3 (>= 3.11) and its venv module.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/dc-overview
COPY pyproject.toml README.md /src/
COPY src /src/src
COPY adapters /src/adapters
COPY frontends /src/frontends
COPY templates /src/templates
COPY dashboards /src/dashboards
RUN /opt/dc-overview/bin/pip install /src \
 && find /opt/dc-overview -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/dc-overview/bin/python -m compileall -q /opt/dc-overview/lib

FROM ${BASE}
LABEL org.opencontainers.image.title="dc-overview" \
      org.opencontainers.image.description="GPU fleet inventory, exporters, Prometheus targets and web UI" \
      org.opencontainers.image.source="https://github.com/cryptolabsza/dc-overview"
COPY --from=build /opt/dc-overview /opt/dc-overview
# A user of its own; the stack runs the container as the owner of the data dir
# it mounts at /data, so files it writes keep that owner.
RUN groupadd --system --gid 10001 dc-overview \
 && useradd --system --uid 10001 --gid dc-overview --home-dir /data --no-create-home --shell /usr/sbin/nologin dc-overview \
 && mkdir -p /data && chown dc-overview:dc-overview /data
ENV PATH=/opt/dc-overview/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DC_OVERVIEW_DATA=/data \
    DC_OVERVIEW_HOST=0.0.0.0 \
    DC_OVERVIEW_PORT=5001
USER dc-overview
WORKDIR /data
EXPOSE 5001
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os,urllib.request;urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('DC_OVERVIEW_PORT','5001'),timeout=4)"]
CMD ["dc-overview", "serve"]
