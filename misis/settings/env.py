"""The one reader of the environment for every settings module (django-environ)."""

import environ

env = environ.Env()
