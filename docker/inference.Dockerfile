# The inference worker: loads the detector once and batches frames from every runner
# (requirements/inference.txt, then requirements/inference-nodeps.txt with --no-deps).
#
#   docker build -f docker/inference.Dockerfile -t misis-inference .
#   docker run --gpus 1 -e DATABASE_URL=... -e REDIS_URL=... -e DJANGO_SECRET_KEY=... \
#       -e DJANGO_ALLOWED_HOSTS=... misis-inference
#
# CUDA comes from the wheels, not from the base image: PyPI's torch 2.14.1 is a CUDA 13.0 build
# that brings its own runtime, cuBLAS and cuDNN (nvidia-* wheels). The host needs only the
# NVIDIA driver (>= 580 for CUDA 13) and the NVIDIA Container Toolkit. Without a GPU the same
# image runs on the CPU with MISIS_DEVICE=cpu.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the virtual environment -------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/ /tmp/requirements/
# inference.txt includes base.txt. The --no-deps step keeps ultralytics from pulling
# opencv-python over base.txt's opencv-python-headless (see the files' headers).
RUN /opt/venv/bin/pip install -r /tmp/requirements/inference.txt \
    && /opt/venv/bin/pip install --no-deps -r /tmp/requirements/base-nodeps.txt \
    && /opt/venv/bin/pip install --no-deps -r /tmp/requirements/inference-nodeps.txt

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=misis.settings.production \
    MISIS_VIDEO_ROOT=/data/videos \
    MISIS_WORKER_NAME=inference \
    MISIS_DEVICE=cuda:0 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    YOLO_CONFIG_DIR=/app/.run/ultralytics \
    MPLCONFIGDIR=/app/.run/matplotlib
# libglib2.0-0: OpenCV (headless) loads GLib's thread helpers on some builds; no libGL needed.
# libgomp1: OpenMP for onnxruntime/OpenCV builds that do not bundle it (torch bundles its own).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 misis \
    && useradd --system --uid 10001 --gid misis --create-home --home-dir /home/misis \
       --shell /usr/sbin/nologin misis
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY . /app
RUN python -m compileall -q /app \
    && mkdir -p /app/.run/ultralytics /app/.run/matplotlib /data/videos /models \
    && chown -R misis:misis /app/.run /data/videos /models
USER misis
# Loading torch and the weights, then a warm-up batch, takes a while before the first ping.
HEALTHCHECK --interval=30s --timeout=15s --start-period=180s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py", "worker"]
CMD ["celery", "-A", "misis", "worker", "-l", "INFO", "-Q", "inference", "-n", "inference@%h", "-P", "solo"]
