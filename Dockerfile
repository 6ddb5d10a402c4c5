# N-body Explorer dashboard image.
#
#   docker build -t nbody-explorer .
#   docker run --rm -p 127.0.0.1:5006:5006 nbody-explorer      # then open http://localhost:5006/app
#
# The server is `nbody serve` (signed sessions, a session cap, /liveness, /health). Inside the
# container it must listen on 0.0.0.0 (the published port arrives on the container's own
# interface); `-p 127.0.0.1:5006:5006` keeps it reachable from this host only.
# Browsers are only allowed to open the dashboard's websocket from the origins listed in
# NBODY_WEBSOCKET_ORIGINS (comma-separated host:port, as the browser sees it), e.g.
#   docker run -p 8080:5006 -e NBODY_WEBSOCKET_ORIGINS=lecture.example.org:8080 nbody-explorer
# NBODY_MAX_SESSIONS (default 30) caps the sessions; NBODY_SECRET_KEY (32+ bytes) signs the
# session ids (a random key per container start when unset).
#
# The base image is a build argument so that CI, with no registry, can build on a local image
# (any Debian-like image with python3 >= 3.11 and python3-venv works).
ARG BASE=python:3.11-slim

# Stage 1: the wheel, built from the sources (the same wheel `pip wheel .` builds anywhere).
FROM ${BASE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nbody_core ./nbody_core
COPY app ./app
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-cache-dir --no-deps -w /dist .

# Stage 2: the image: that wheel installed under requirements.lock, no source tree.
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The code belongs to root and stays read-only for the server, which runs as the
# unprivileged user `nbody` (uid 10001).
RUN python3 -m venv /opt/venv \
    && useradd --create-home --home-dir /home/nbody --uid 10001 --user-group --shell /usr/sbin/nologin nbody

# Dependencies first, at the versions of requirements.lock, in their own layer: a rebuild
# after a code change reuses it. Then the wheel alone (--no-deps): the dashboard is the
# package nbody_explorer, its lessons and scripts package data; no checkout, no editable install.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -r /tmp/requirements.lock
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-cache-dir --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && python -c "import nbody_core, nbody_explorer"

USER 10001:10001
ENV HOME=/home/nbody \
    NBODY_WEBSOCKET_ORIGINS=localhost:5006,127.0.0.1:5006

EXPOSE 5006

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/health', timeout=4)"]

CMD ["nbody", "serve", "--address", "0.0.0.0", "--port", "5006"]
