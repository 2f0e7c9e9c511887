"""Processes the suite and the benches start: the worker stack, media servers.

tests/ and bench/ both import this package; it imports neither, and no pytest: a failure to
start raises, and each caller reports it its own way.
"""
