# The REST API and the admin: gunicorn serving misis.wsgi (requirements/base.txt).
#
#   docker build -f docker/api.Dockerfile -t misis-api .
#
# Migrations are not run here: the compose file runs `manage.py migrate` once, in the one-shot
# `migrate` service, before the API and the workers start. Static files (the admin's, DRF's) are
# collected into /app/staticfiles at build time; gunicorn does not serve them (see docs/DEPLOY.md).
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
    MISIS_VIDEO_ROOT=/data/videos
# libglib2.0-0: OpenCV (headless) loads GLib's thread helpers on some builds; no libGL needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 misis \
    && useradd --system --uid 10001 --gid misis --create-home --home-dir /home/misis \
       --shell /usr/sbin/nologin misis
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY . /app
# collectstatic needs settings but no database: the base settings with a throwaway key.
RUN DJANGO_SETTINGS_MODULE=misis.settings.base DJANGO_SECRET_KEY=collectstatic-only \
       python manage.py collectstatic --no-input -v 0 \
    && python -m compileall -q /app \
    && mkdir -p /app/.run /data/videos \
    && chown misis:misis /app/.run /data/videos
USER misis
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py", "http"]
# Workers: WEB_CONCURRENCY (gunicorn's own variable; compose sets it from MISIS_API_WORKERS).
# More gunicorn flags: GUNICORN_CMD_ARGS, e.g. "--forwarded-allow-ips=*" behind a proxy.
# misis/gunicorn_conf.py: the access log (stdout) without query strings.
CMD ["gunicorn", "misis.wsgi", "--config", "python:misis.gunicorn_conf", "--bind", "0.0.0.0:8000", \
     "--worker-class", "gthread", "--threads", "8", "--worker-tmp-dir", "/dev/shm"]
