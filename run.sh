#!/usr/bin/env bash
# ./run.sh          build .venv, migrate, run the whole stack in the foreground (Ctrl-C stops it)
# ./run.sh --test   install what the tests need and run the whole suite
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
RUN_DIR="$ROOT/.run"
mkdir -p "$RUN_DIR/logs"

log() { printf '\033[1m[run.sh]\033[0m %s\n' "$*"; }

# --- services: reuse PostgreSQL and Redis when they answer, start them when they do not ------
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  else
    echo "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is missing" >&2; exit 1
  fi
  for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 0.5; done
  echo "PostgreSQL did not come up" >&2; exit 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 60); do redis-cli ping >/dev/null 2>&1 && return; sleep 0.5; done
  echo "Redis did not come up" >&2; exit 1
}

ensure_database() {
  local db=${1:-misis}
  if [ -z "${DATABASE_URL:-}" ]; then
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
  fi
}

# --- the virtual environment: reinstall only when a requirements file changed ---------------
ensure_venv() {
  local stamp="$VENV/.installed-$(cat requirements/*.txt | sha1sum | cut -c1-12)-$*"
  if [ -f "$stamp" ]; then return; fi
  if [ ! -x "$PY" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
  fi
  local f
  for f in "$@"; do
    log "installing requirements/$f.txt"
    "$PY" -m pip install -q --disable-pip-version-check -r "requirements/$f.txt"
    if [ -f "requirements/$f-nodeps.txt" ]; then
      # Packages whose declared dependencies must not come along (see the file's header).
      "$PY" -m pip install -q --disable-pip-version-check --no-deps -r "requirements/$f-nodeps.txt"
    fi
  done
  # Every set includes base.txt; its --no-deps part (see the file's header) comes last.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -r requirements/base-nodeps.txt
  rm -f "$VENV"/.installed-*
  touch "$stamp"
}

# Debian packages the tests need: installed only as root, with one apt-get update per run.
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# A Debian tool the suite runs, installed on a machine that lacks it: $1 the command, $2 the
# package, $3 what needs it.
ensure_debian_tool() {
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's $2 ($3)"
    apt_install "$2"
  else
    log "$1 is missing and cannot be installed here (need root and apt-get)"
  fi
}

# The live-source tests serve RTSP with gst-rtsp-server, run by Debian's python3 through
# PyGObject (testbed/media_servers/rtsp_server.py); neither comes from pip.
ensure_gstreamer() {
  local check='import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer'
  # glib-networking: GIO's TLS backend, for rtsps://; openssl makes the test certificate.
  /usr/bin/python3 -c "$check" 2>/dev/null && dpkg -s glib-networking >/dev/null 2>&1 \
    && command -v openssl >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing GStreamer's RTSP server (live-source tests)"
    apt_install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi glib-networking openssl \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  else
    log "gst-rtsp-server is missing and cannot be installed here (need root and apt-get)"
  fi
}

# The MQTT tests start their own broker: Debian's mosquitto.
ensure_mosquitto() {
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's mosquitto (MQTT tests)"
    apt_install mosquitto
  else
    log "mosquitto is missing and cannot be installed here (need root and apt-get)"
  fi
}

if [ "${1:-}" = "--test" ]; then
  shift
  ensure_venv test inference
  ensure_postgres
  ensure_redis
  # The browser test drives Debian's Chromium.
  ensure_debian_tool chromium chromium "browser test"
  # tests/test_deploy.py renders docker-compose.yml with docker-compose v1 (`config` needs no
  # engine); a raw YAML read would pass a file compose refuses.
  ensure_debian_tool docker-compose docker-compose "deployment tests"
  # tests/test_kubernetes.py renders the manifests with `kubectl kustomize` (no cluster).
  ensure_debian_tool kubectl kubectl "Kubernetes manifest tests"
  ensure_gstreamer
  ensure_mosquitto
  export DJANGO_SETTINGS_MODULE=misis.settings.test
  log "ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check . >/dev/null || { "$VENV/bin/ruff" format --diff . | head -50; exit 1; }
  log "types (mypy)"
  "$VENV/bin/mypy"
  log "import layers (lint-imports)"
  "$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache
  log "pytest"
  exec "$VENV/bin/pytest" "$@"
fi

# --- the stack -------------------------------------------------------------------------------
ensure_venv inference
ensure_postgres
ensure_redis
ensure_database misis
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-misis.settings.local}
PORT=${MISIS_PORT:-8000}
RUNNERS=${MISIS_RUNNERS:-2}
"$PY" manage.py migrate --no-input -v 0
"$PY" manage.py collectstatic --no-input -v 0

declare -A CMDS PIDS
# misis/gunicorn_conf.py: the access log without query strings.
CMDS[api]="$VENV/bin/gunicorn misis.wsgi -c python:misis.gunicorn_conf -b 127.0.0.1:$PORT -w ${MISIS_API_WORKERS:-2} -k gthread --threads 8"
CMDS[beat]="$VENV/bin/celery -A misis beat -l INFO -s $RUN_DIR/celerybeat-schedule"
CMDS[orchestrator]="$VENV/bin/celery -A misis worker -l INFO -Q orchestrator -n orchestrator@%h -P threads -c 4"
# Runners allocate with jemalloc (Debian's libjemalloc2): glibc's per-thread heaps keep what a
# stopped scenario's threads freed, and runner RSS creeps up as scenarios come and go (README,
# "Cameras on a CPU node"). Without the library: glibc with two heaps, which halves the creep.
JEMALLOC=""
for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2; do [ -e "$lib" ] && JEMALLOC=$lib && break; done
if [ -n "$JEMALLOC" ]; then
  RUNNER_ENV="env LD_PRELOAD=$JEMALLOC"
else
  RUNNER_ENV="env MALLOC_ARENA_MAX=2"
  log "libjemalloc2 is not installed: runners use glibc malloc with MALLOC_ARENA_MAX=2 (apt-get install libjemalloc2)"
fi
for i in $(seq 1 "$RUNNERS"); do
  CMDS[runner$i]="$RUNNER_ENV $VENV/bin/celery -A misis worker -l INFO -Q runner -n runner$i@%h -P threads -c ${MISIS_RUNNER_CONCURRENCY:-64} --prefetch-multiplier 1"
done
CMDS[inference]="$VENV/bin/celery -A misis worker -l INFO -Q inference -n inference@%h -P solo"

STOPPING=0
start() {
  local name=$1
  # shellcheck disable=SC2086
  ${CMDS[$name]} > >(sed -u "s/^/[$name] /" | tee -a "$RUN_DIR/logs/$name.log") 2>&1 &
  PIDS[$name]=$!
}
stop_all() {
  STOPPING=1
  log "stopping"
  local name pid
  for name in "${!PIDS[@]}"; do kill -TERM "${PIDS[$name]}" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  log "stopped"
  exit 0
}
trap stop_all INT TERM

for name in "${!CMDS[@]}"; do start "$name"; done

for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/health/" >/dev/null 2>&1 && break; sleep 0.2; done
# The demo user is an ordinary user (its token is printed below): no staff rights, also when an
# earlier run.sh made it staff.
TOKEN=$("$PY" manage.py issue_token demo 2>/dev/null | tail -1)
"$PY" manage.py shell -c "from django.contrib.auth import get_user_model as g; g().objects.filter(username='demo').update(is_staff=False, is_superuser=False)" >/dev/null
log "API:    http://127.0.0.1:$PORT/   (health: http://127.0.0.1:$PORT/health/)"
# An admin login for this machine, made once and kept in .run/ (readable by you only).
if [ ! -s "$RUN_DIR/admin-password" ]; then
  (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))' >"$RUN_DIR/admin-password")
  DJANGO_SUPERUSER_PASSWORD=$(cat "$RUN_DIR/admin-password") "$PY" manage.py createsuperuser \
    --no-input --username admin --email admin@localhost >/dev/null 2>&1 \
    || "$PY" manage.py shell -c "from django.contrib.auth import get_user_model as g; u=g().objects.get(username='admin'); u.set_password(open('$RUN_DIR/admin-password').read().strip()); u.save()"
fi
log "admin:  http://127.0.0.1:$PORT/admin/   (user admin, password $(cat "$RUN_DIR/admin-password"))"
log "token:  $TOKEN   (header: Authorization: Token $TOKEN)"
if [ "${MISIS_DEMO:-1}" != "0" ]; then
  VIDEO_ROOT=${MISIS_VIDEO_ROOT:-$ROOT/media/videos}
  # A person (from ultralytics' sample photos) walking across a line into a zone, looping:
  # the detector has someone to find, and the analytics events within the first pass.
  [ -f "$VIDEO_ROOT/demo-walk.mp4" ] || "$PY" manage.py make_sample_video demo-walk.mp4 --walker \
    >/dev/null || "$PY" manage.py make_sample_video demo-walk.mp4 >/dev/null
  AUTH="Authorization: Token $TOKEN"
  SID=$(cat "$RUN_DIR/demo-walk-scenario" 2>/dev/null || true)
  # Reuse the demo scenario of an earlier run (it resumes by itself); start it if it ended.
  if [ -n "$SID" ] && curl -fsS -H "$AUTH" "http://127.0.0.1:$PORT/scenario/$SID/" >/dev/null 2>&1; then
    curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' \
      -d '{"status": "init_startup"}' "http://127.0.0.1:$PORT/scenario/$SID/" >/dev/null || true
  else
    SID=$(curl -fsS -X POST "http://127.0.0.1:$PORT/scenario/" -H "$AUTH" \
      -H 'Content-Type: application/json' \
      -d '{"source": "demo-walk.mp4", "name": "demo", "params": {"loop": true, "target_fps": 5,
           "lines": [{"name": "middle", "points": [[0.5, 0.0], [0.5, 1.0]]}],
           "zones": [{"name": "right", "polygon": [[0.7, 0.0], [1.0, 0.0], [1.0, 1.0], [0.7, 1.0]],
                      "dwell": 1}]}}' \
      | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])') || SID=""
    echo "$SID" >"$RUN_DIR/demo-walk-scenario"
  fi
  if [ -n "$SID" ]; then
    log "demo scenario: $SID"
    log "  predictions: curl -H 'Authorization: Token $TOKEN' http://127.0.0.1:$PORT/prediction/$SID/"
    log "  events (line crossings, zone enter/dwell): curl -H 'Authorization: Token $TOKEN' http://127.0.0.1:$PORT/event/$SID/"
    # A signed link for this scenario only, valid MISIS_PREVIEW_LINK_TTL (an hour by default);
    # GET /scenario/<id>/ gives a fresh one.
    PREVIEW=$(curl -fsS -H "$AUTH" "http://127.0.0.1:$PORT/scenario/$SID/" \
      | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["preview_url"])') || PREVIEW=""
    if [ -n "$PREVIEW" ]; then
      log "  live preview (boxes on the video): http://127.0.0.1:$PORT$PREVIEW"
    fi
  fi
fi

# Supervise: a process that dies is started again (a runner killed by the OOM killer, say).
while true; do
  sleep 1 &
  wait $! || true
  [ $STOPPING = 1 ] && break
  for name in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      log "$name exited; starting it again"
      start "$name"
    fi
  done
done
