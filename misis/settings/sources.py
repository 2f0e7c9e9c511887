"""Live and network sources: timeouts, reconnects, the hosts they may reach, the largest frame.
Imported by base.py."""

from misis.settings.env import env

# A camera that stops answering would otherwise block a read for 30 s and more.
MISIS_STREAM_OPEN_TIMEOUT: float = env.float("MISIS_STREAM_OPEN_TIMEOUT", default=10.0)
MISIS_STREAM_READ_TIMEOUT: float = env.float("MISIS_STREAM_READ_TIMEOUT", default=5.0)
# HLS (.m3u8) reads wait for whole segments: at least this long (3 x a 6 s target duration).
MISIS_HLS_READ_TIMEOUT: float = env.float("MISIS_HLS_READ_TIMEOUT", default=20.0)
# RTSP over TCP by default: UDP loses packets (smeared frames) behind NAT and on busy links.
MISIS_RECONNECT_BACKOFF_BASE: float = env.float("MISIS_RECONNECT_BACKOFF_BASE", default=0.5)
MISIS_RECONNECT_BACKOFF_MAX: float = env.float("MISIS_RECONNECT_BACKOFF_MAX", default=10.0)
# Hosts network sources may connect to (sources/hosts.py): IP networks, names, ".domain" suffixes.
# Both lists add to the built-in denials of sources/hosts.py (cloud metadata, link-local,
# unspecified, multicast, reserved), which nothing overrides. Empty allow list: any host not
# denied. A deny entry beats an allow entry.
MISIS_SOURCE_ALLOW: list[str] = env.list("MISIS_SOURCE_ALLOW", default=[])
MISIS_SOURCE_DENY: list[str] = env.list("MISIS_SOURCE_DENY", default=[])
# Deny loopback too (sources/hosts.py LOOPBACK_DENY). Not from the environment: production
# settings turn it on; test and local settings keep it off, their media servers use 127.0.0.1.
MISIS_SOURCE_DENY_LOOPBACK = False

# The largest frame (width x height) a source or an upload may have, checked before decoding:
# one 16k x 16k frame would cost about 1 GB in every process that decodes it.
MISIS_MAX_FRAME_PIXELS: int = env.int("MISIS_MAX_FRAME_PIXELS", default=3840 * 2160)
# FFmpeg decoder threads per capture: 1 decodes in the capture's own reader thread. A node runs
# many captures on few cores; 0 lets FFmpeg pick (cores + 1 threads per capture).
MISIS_DECODER_THREADS: int = env.int("MISIS_DECODER_THREADS", default=1)
