"""Helpers several test modules share (written once here; model factories: tests/factories.py,
child processes and ports: testbed/processes.py)."""

from __future__ import annotations

from runner.sources import Frame, VideoSource


def read_all(source: VideoSource) -> list[Frame]:
    """Every frame of an opened source, read to its end (the caller opens and closes it)."""
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames
