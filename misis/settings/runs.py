"""How scenarios run: heartbeats, the lease, the watchdog and outbox relay, restarts, quotas,
publishing. Imported by base.py."""

from misis.settings.env import env

MISIS_HEARTBEAT_INTERVAL: float = env.float("MISIS_HEARTBEAT_INTERVAL", default=1.0)
# A runner whose heartbeat is older than this is presumed dead and replaced.
MISIS_HEARTBEAT_TIMEOUT: float = env.float("MISIS_HEARTBEAT_TIMEOUT", default=5.0)
# A start sent to the runners must be claimed by one within this long, or the watchdog sends it
# again under a new epoch (a runner died holding it, the message was lost). Longer than the
# heartbeat's timeout: under load a start can wait in the runner queue for seconds, and
# restarting it only adds another to the same queue.
MISIS_START_TIMEOUT: float = env.float("MISIS_START_TIMEOUT", default=6 * MISIS_HEARTBEAT_TIMEOUT)
# The lease outlives the watchdog's patience: a runner starved of CPU for a few seconds keeps
# it until the watchdog has really replaced it (a newer epoch takes a lease over at once, and
# the database fence stops the old writer), instead of quitting on its own and adding a
# restart to an already overloaded machine (bench/scale.py found that snowball at 300).
MISIS_LEASE_TTL: float = env.float(
    "MISIS_LEASE_TTL",
    default=max(3.0 * MISIS_HEARTBEAT_INTERVAL, MISIS_HEARTBEAT_TIMEOUT + MISIS_HEARTBEAT_INTERVAL),
)
# The orchestrator's tick (scenarios.tick: the outbox relay, the watchdog, webhook retries and
# MQTT), one beat entry and one task each time.
MISIS_TICK_INTERVAL: float = env.float("MISIS_TICK_INTERVAL", default=1.0)
# Outbox rows the fast path has not sent after this long are sent by the relay.
MISIS_OUTBOX_RELAY_GRACE: float = env.float("MISIS_OUTBOX_RELAY_GRACE", default=2.0)
# Scenarios a user may have that are not inactive (created, running or stopping); one more is
# refused with 429. 0: no limit. Staff included.
MISIS_QUOTA_ACTIVE_SCENARIOS: int = env.int("MISIS_QUOTA_ACTIVE_SCENARIOS", default=50)
MISIS_MAX_RESTARTS: int = env.int("MISIS_MAX_RESTARTS", default=5)
MISIS_RESTART_BACKOFF_BASE: float = env.float("MISIS_RESTART_BACKOFF_BASE", default=1.0)
MISIS_RESTART_BACKOFF_MAX: float = env.float("MISIS_RESTART_BACKOFF_MAX", default=30.0)
MISIS_OPEN_RETRIES: int = env.int("MISIS_OPEN_RETRIES", default=3)
# Rows a runner holds are published after this long (or at MISIS_PUBLISH_BATCH rows): for a
# live source (a camera, a looping file) at once, since each prediction is about the newest
# frame; for a file read frame by frame less often, since there every publish is work taken
# from the detector on the same machine (bench/detection.py) and nobody waits on a frame.
MISIS_PUBLISH_INTERVAL: float = env.float("MISIS_PUBLISH_INTERVAL", default=0.02)
MISIS_FILE_PUBLISH_INTERVAL: float = env.float("MISIS_FILE_PUBLISH_INTERVAL", default=0.25)
MISIS_PUBLISH_BATCH: int = env.int("MISIS_PUBLISH_BATCH", default=50)
# A live scenario whose detector is free and whose newest frame is about to be replaced waits
# for the replacement, publishing meanwhile: the share of its analysed frames a second it may
# give up for that on average (runner/freshness.py). Predictions come about fresher frames:
# the newest frame's median age drops from half the frame interval by the wait. 0: never.
MISIS_FRESH_FRAME_COST: float = env.float("MISIS_FRESH_FRAME_COST", default=0.02)
