from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runner.samples import write_people_video, write_sample_video


class Command(BaseCommand):
    help = "Write a sample video into the video root (for the demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", default="sample.mp4")
        parser.add_argument("--frames", type=int, default=250)
        parser.add_argument(
            "--people",
            action="store_true",
            help="people from ultralytics' photos (needs the inference requirements)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.MISIS_VIDEO_ROOT) / options["name"]
        if options["people"]:
            write_people_video(path, frames=options["frames"])
        else:
            write_sample_video(path, frames=options["frames"])
        self.stdout.write(str(path))
