"""gunicorn settings of the API, shared by run.sh and docker/api.Dockerfile.

    gunicorn misis.wsgi -c python:misis.gunicorn_conf ...

The access log leaves out query strings: ``%(r)s`` (the request line) and ``%(q)s`` would log
``?sig=`` preview links and whatever secrets clients put in a URL, and ``%(f)s`` (Referer) is a
full URL with its query string too. Method, path and protocol are logged instead.
"""

accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
