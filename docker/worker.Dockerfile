# Celery processes without the detector (requirements/base.txt): runner, orchestrator and beat.
# One image; the command picks the role (the compose file sets it per service):
#
#   runner        celery -A misis worker -Q runner -n runner@%h -P threads -c 64 --prefetch-multiplier 1
#   orchestrator  celery -A misis worker -Q orchestrator -n orchestrator@%h -P threads -c 4
#   beat          celery -A misis beat -s /app/.run/celerybeat-schedule     (exactly one)
#
#   docker build -f docker/worker.Dockerfile -t misis-worker .
#
# The default command is a runner, the role most often started on extra machines.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the virtual environment -------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/base.txt requirements/base-nodeps.txt /tmp/requirements/
RUN /opt/venv/bin/pip install -r /tmp/requirements/base.txt \
    && /opt/venv/bin/pip install --no-deps -r /tmp/requirements/base-nodeps.txt

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=misis.settings.production \
    MISIS_VIDEO_ROOT=/data/videos \
    MISIS_WORKER_NAME=runner \
    MISIS_RUNNER_CONCURRENCY=64
# libglib2.0-0: OpenCV (headless) loads GLib's thread helpers on some builds; no libGL needed.
# libjemalloc2: the allocator of these workers (LD_PRELOAD below): glibc's per-thread heaps keep
# what stopped scenarios freed (README, "Cameras on a CPU node"); linked to one path for any arch.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libjemalloc2 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2)" /usr/local/lib/libjemalloc.so.2 \
    && groupadd --system --gid 10001 misis \
    && useradd --system --uid 10001 --gid misis --create-home --home-dir /home/misis \
       --shell /usr/sbin/nologin misis
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY . /app
RUN python -m compileall -q /app \
    && mkdir -p /app/.run /data/videos \
    && chown misis:misis /app/.run /data/videos
USER misis
# Pings the Celery node $MISIS_WORKER_NAME@<hostname> (`celery -A misis inspect ping -d ...`);
# beat answers no pings: its service overrides this with `healthcheck.py beat`.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py", "worker"]
# SIGTERM (docker stop) makes a runner hand its scenarios over to the other runners at once.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec celery -A misis worker -l INFO -Q runner -n runner@%h -P threads -c \"$MISIS_RUNNER_CONCURRENCY\" --prefetch-multiplier 1"]
