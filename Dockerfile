# One image for every YokeFlow process; the command picks the process (docker-entrypoint.sh):
#   docker run IMAGE                      -> web: waits for the database, migrates, serves on :8000 (gunicorn)
#   docker run IMAGE worker               -> django-q2 cluster (manage.py yokeflow worker)
#   docker run IMAGE manage yokeflow ...  -> any management command
# Nothing secret is baked in: SECRET_KEY, DATABASE_URL, ANTHROPIC_API_KEY … come from the environment at run time.
# Lint: hadolint Dockerfile (tests/core/test_container_files.py runs it).

# The exact patch release, so a rebuild of the same commit gets the same Python; bump it on purpose. The build
# and runtime stages must use the same image: the venv's interpreter path points into it.
ARG PYTHON_IMAGE=python:3.12.15-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# Requirements alone first: this layer stays cached until requirements.txt changes, not on every code edit.
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=yokeflow.settings \
    PROJECTS_ROOT=/data/projects
# git: agents work in git worktrees. curl: the HEALTHCHECK. tini: PID 1 that forwards signals and reaps the
# orphaned grandchildren agents' commands leave behind (python as PID 1 would leave them as zombies).
# bubblewrap: the jail every agent or member command runs in (README "Security model"); inside a container it
# needs user namespaces, which docker-compose.yml allows with its security_opt lines.
# Versions are not pinned: Debian replaces a package version on its security mirror when it patches it, so an
# exact pin breaks the build at the next security update; the pinned base image fixes the release instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git curl tini bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 yokeflow \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/yokeflow --shell /bin/sh yokeflow \
    && mkdir -p /data/projects \
    && chown -R 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root, so the process cannot rewrite it; only var/ (SQLite when no DATABASE_URL is
# given) and /data (the repositories) are the user's.
COPY . /app
# Static files are collected at build time, not at start. DEBUG=1 only for this command: settings then accept a
# missing SECRET_KEY (a development placeholder that ends up in no layer); no database is touched.
RUN DEBUG=1 python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var \
    && chown 10001:10001 /app/var
# prometheus_client in multi-process mode (gunicorn runs several workers) keeps one file per process here;
# the entrypoint empties it at start. Set after collectstatic so the build writes no metric files.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/yokeflow-metrics
RUN mkdir -p /tmp/yokeflow-metrics && chown 10001:10001 /tmp/yokeflow-metrics
# No VOLUME instruction: it would leave an anonymous volume behind every `docker run … manage`. Mount one at
# /data/projects (docker-compose.yml does); a new named volume takes this directory's owner, the user.
USER 10001:10001
EXPOSE 8000
# The web process: /ready answers 200 when it can serve (database, git, disk), 503 otherwise. The start period
# covers the wait for the database and the migrations. A worker container serves no HTTP: docker-compose.yml
# overrides this check for it with `python manage.py yokeflow doctor --quiet`; with plain `docker run … worker`,
# pass --health-cmd the same way or --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "curl -fsS --max-time 4 http://127.0.0.1:8000/ready || exit 1"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/docker-entrypoint.sh"]
CMD ["web"]
