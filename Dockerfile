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

WORKDIR /opt/nbody-explorer
# Dependencies first, in their own layer: a rebuild after a code change reuses it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY nbody_core ./nbody_core
COPY app ./app
COPY assets ./assets
# Editable install: `panel serve app` runs app/ from this directory, and nbody_core finds its
# data files in assets/ beside it.
RUN pip install --no-cache-dir --no-deps -e . \
    && python -c "import nbody_core, app"

USER 10001:10001
ENV HOME=/home/nbody \
    NBODY_WEBSOCKET_ORIGINS=localhost:5006,127.0.0.1:5006

EXPOSE 5006

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/health', timeout=4)"]

CMD ["nbody", "serve", "--address", "0.0.0.0", "--port", "5006"]
