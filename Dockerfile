# One image for every YokeFlow process; the command picks web, worker or a management command:
#   docker run IMAGE                      -> web (gunicorn)
#   docker run IMAGE worker               -> django-q2 cluster
#   docker run IMAGE manage yokeflow ...  -> any management command
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=yokeflow.settings PROJECTS_ROOT=/data/projects
RUN apt-get update && apt-get install -y --no-install-recommends git curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 yokeflow && mkdir -p /data && chown yokeflow /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=yokeflow . /app
RUN DEBUG=1 python manage.py collectstatic --noinput --verbosity 0
USER yokeflow
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsS http://127.0.0.1:8000/login/ >/dev/null || exit 1
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["web"]
