"""Analytics events leaving the system: webhooks and MQTT. Imported by base.py."""

from misis.settings.env import env

# Events (scenarios/webhooks.py, scenarios/mqtt.py): a webhook attempt waits this long for an
# answer; failures are retried with backoff from BASE doubling to MAX, for GIVE_UP seconds.
MISIS_WEBHOOK_TIMEOUT: float = env.float("MISIS_WEBHOOK_TIMEOUT", default=10.0)
MISIS_WEBHOOK_BACKOFF_BASE: float = env.float("MISIS_WEBHOOK_BACKOFF_BASE", default=2.0)
MISIS_WEBHOOK_BACKOFF_MAX: float = env.float("MISIS_WEBHOOK_BACKOFF_MAX", default=300.0)
MISIS_WEBHOOK_GIVE_UP: float = env.float("MISIS_WEBHOOK_GIVE_UP", default=3600.0)
# An mqtt:// (or mqtts://) broker URL, credentials in its userinfo: every event is also
# published there, QoS 1 (scenarios/mqtt.py).
MISIS_MQTT_URL: str = env("MISIS_MQTT_URL", default="")
