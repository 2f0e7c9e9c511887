from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runner.samples import write_sample_video


class Command(BaseCommand):
    help = "Write a synthetic sample video into the video root (for the demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", default="sample.mp4")
        parser.add_argument("--frames", type=int, default=250)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.MISIS_VIDEO_ROOT) / options["name"]
        write_sample_video(path, frames=options["frames"])
        self.stdout.write(str(path))
