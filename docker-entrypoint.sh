#!/bin/sh
# Container entry point: web (default), worker, or `manage <command> …`.
set -e
case "${1:-web}" in
  web)    python manage.py migrate --noinput && exec gunicorn yokeflow.wsgi --bind 0.0.0.0:8000 --workers "${WEB_WORKERS:-3}" ;;
  worker) exec python manage.py qcluster ;;
  manage) shift; exec python manage.py "$@" ;;
  *)      exec "$@" ;;
esac
