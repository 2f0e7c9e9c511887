"""Developer machine and the single-machine stack started by ./run.sh."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "local-insecure-key-not-for-production")

from misis.settings.env import env

from .base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
