from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runner.samples import write_people_video, write_sample_video, write_walker_video


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
        parser.add_argument(
            "--walker",
            action="store_true",
            help="a person walking across (needs the inference requirements): for analytics",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.MISIS_VIDEO_ROOT) / options["name"]
        if options["walker"]:
            write_walker_video(path, frames=min(options["frames"], 80), fps=10, stay=20)
        elif options["people"]:
            write_people_video(path, frames=options["frames"])
        else:
            write_sample_video(path, frames=options["frames"])
        self.stdout.write(str(path))
