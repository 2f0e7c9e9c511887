"""Where the JPEG snapshots of a scenario's events are stored, and how they are removed.

The runner stores each snapshot (runner/analytics_stage.py) in the video storage
(``STORAGES["videos"]``: the filesystem or S3) under ``snapshots/<scenario id>/``, before the
publish that writes its event; the event row keeps the name.
"""

from __future__ import annotations

import logging
import os

from django.core.files.storage import FileSystemStorage

from sources.storage import video_storage

logger = logging.getLogger(__name__)

SNAPSHOT_ROOT = "snapshots"


def snapshot_dir(scenario_id: object) -> str:
    return f"{SNAPSHOT_ROOT}/{scenario_id}"


def snapshot_name(scenario_id: object, seq: int) -> str:
    return f"{snapshot_dir(scenario_id)}/{seq}.jpg"


def delete_snapshots(scenario_id: object) -> int:
    """Remove every stored snapshot of the scenario (and its folder on the filesystem).

    Lists the folder rather than the event rows: a runner that died between storing a snapshot
    and publishing its event left a file that no row names. Returns how many files went.
    """
    storage = video_storage()
    folder = snapshot_dir(scenario_id)
    try:
        _, files = storage.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in files:
        storage.delete(f"{folder}/{name}")
    if isinstance(storage, FileSystemStorage):
        try:
            os.rmdir(storage.path(folder))
        except FileNotFoundError:
            pass
        except OSError:
            # A late runner stored another file in between; the delayed purge takes it.
            logger.info("scenario %s: snapshot folder not empty yet", scenario_id)
    return len(files)
