#!/bin/sh
# Container entry point (tini runs it as PID 1's child):
#   web               wait for the database, migrate, then serve on 0.0.0.0:8000 with gunicorn
#   worker            wait for the database, then run the django-q2 cluster
#   manage CMD ...    any management command, e.g. `manage yokeflow doctor`
#   anything else     run as given (`sh` for a shell in the image)
# Every process is exec'd, so it receives the stop signal itself. Lint: sh -n and shellcheck
# (tests/core/test_container_files.py).
set -eu

# prometheus_client's multi-process mode merges every file in this directory into /metrics: files left by the
# processes of a previous run (a restarted container keeps its /tmp) would be counted again, and so would those
# of db-wait and migrate, which import the app too. So it is emptied last, just before the long-lived process
# starts. Each container has its own directory.
reset_metrics_dir() {
  if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
  fi
}

# `yokeflow db-wait` retries with a bounded exponential backoff (DB_WAIT_SECONDS) and exits non-zero when it gives
# up; set -e then stops the container with that message instead of starting against no database.
wait_for_database() {
  python manage.py yokeflow db-wait
}

command="${1:-web}"
if [ "$#" -gt 0 ]; then shift; fi

case "$command" in
  web)
    wait_for_database
    # Migrations run here, so an upgrade is `docker compose up -d` (see docs/operations.md for several webs).
    python manage.py migrate --noinput
    # gthread: the event stream (SSE) holds a request open for minutes; a sync worker would be killed by the
    # timeout in the middle of it and could serve nothing else meanwhile. The heartbeat file goes to /dev/shm
    # because a worker blocks on a slow overlay filesystem. Access log on stdout, errors on stderr.
    reset_metrics_dir
    exec gunicorn yokeflow.wsgi \
      --bind 0.0.0.0:8000 \
      --workers "${WEB_WORKERS:-3}" \
      --worker-class gthread \
      --threads "${WEB_THREADS:-4}" \
      --timeout "${WEB_TIMEOUT:-60}" \
      --worker-tmp-dir /dev/shm \
      --access-logfile - \
      --error-logfile - \
      "$@"
    ;;
  worker)
    wait_for_database
    reset_metrics_dir
    exec python manage.py yokeflow worker "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
