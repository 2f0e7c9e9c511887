# Flower, the Celery monitor (requirements/flower.txt): the worker image's application plus
# Flower, so that it reads the broker and the task names from the project's settings.
#
#   docker build -f docker/flower.Dockerfile -t misis-flower .
#   docker run -e FLOWER_BASIC_AUTH=ops:<password> -e REDIS_URL=... -e DATABASE_URL=... \
#       -e DJANGO_SECRET_KEY=... -e DJANGO_ALLOWED_HOSTS=... -p 127.0.0.1:5555:5555 misis-flower
#
# It refuses to start without FLOWER_BASIC_AUTH: Flower can shut workers down and revoke tasks.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the virtual environment -------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/base.txt requirements/base-nodeps.txt requirements/flower.txt /tmp/requirements/
RUN /opt/venv/bin/pip install -r /tmp/requirements/flower.txt \
    && /opt/venv/bin/pip install --no-deps -r /tmp/requirements/base-nodeps.txt

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=misis.settings.production
RUN groupadd --system --gid 10001 misis \
    && useradd --system --uid 10001 --gid misis --create-home --home-dir /home/misis \
       --shell /usr/sbin/nologin misis
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY . /app
RUN python -m compileall -q /app
USER misis
EXPOSE 5555
# /healthcheck answers without authentication (and says nothing but "OK").
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5555/healthcheck', timeout=5)"]
CMD ["sh", "-c", "[ -n \"$FLOWER_BASIC_AUTH\" ] || { echo 'set FLOWER_BASIC_AUTH=user:password' >&2; exit 1; }; exec celery -A misis flower --port=5555"]
