"""Production: refuses to start with an unsafe configuration."""

from django.core.exceptions import ImproperlyConfigured

from misis.settings.env import env

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, DEBUG, SECRET_KEY

if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off in production")
if not SECRET_KEY or "insecure" in SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a long random value")
if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the served host names")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Network sources may never reach this machine (on top of the built-in denials of
# sources/hosts.py); no allow entry overrides it.
MISIS_SOURCE_DENY_LOOPBACK = True
