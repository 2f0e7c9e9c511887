"""The inference worker lowers its own CPU priority, every thread of it (inference/worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run in a process of its own: a nice value once raised cannot be lowered without privileges,
# and the test process must keep its own.
_SCRIPT = """
import json, os, threading
from inference.worker import lower_priority

before = threading.Event(); done = threading.Event()
def idle(): before.set(); done.wait()
early = threading.Thread(target=idle); early.start(); before.wait()  # as Celery's threads
lazy = threading.Thread(target=done.wait); lazy.start()
os.setpriority(os.PRIO_PROCESS, lazy.native_id, 15)  # already lower: left so

result = {"returned": lower_priority(int(os.environ["WANT"]))}
seen = {}
def later(): seen["later"] = os.getpriority(os.PRIO_PROCESS, 0)  # as the runtime's threads
t = threading.Thread(target=later); t.start(); t.join()
result |= {
    "main": os.getpriority(os.PRIO_PROCESS, 0),
    "early": os.getpriority(os.PRIO_PROCESS, early.native_id),
    "lazy": os.getpriority(os.PRIO_PROCESS, lazy.native_id),
    **seen,
}
done.set()
print(json.dumps(result))
"""


def run(want: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        env={"WANT": str(want), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, int] = json.loads(out.stdout)
    return result


def test_every_thread_and_every_later_one_runs_at_the_nice_value() -> None:
    assert run(10) == {"returned": 10, "main": 10, "early": 10, "lazy": 15, "later": 10}


def test_zero_leaves_the_priority_as_it_was() -> None:
    assert run(0) == {"returned": 0, "main": 0, "early": 0, "lazy": 15, "later": 0}


@pytest.mark.parametrize("value", ["-5", "20"])
def test_a_nice_value_out_of_range_stops_startup(value: str) -> None:
    env = {
        **os.environ,
        "MISIS_INFERENCE_NICE": value,
        "DJANGO_SETTINGS_MODULE": "misis.settings.test",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"MISIS_INFERENCE_NICE: {value} is not a nice value from 0 to 19" in done.stderr
