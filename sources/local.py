"""Files in the video root (MISIS_VIDEO_ROOT), named by a path relative to it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from sources.base import FILE_FORMATS, Source, SourceError, Target

# Also what another user's upload answers (sources/selectors.py): it reads exactly like a file
# that does not exist.
FILE_NOT_FOUND = "file not found in the video root: {source}"


def resolve_local(source: str, root: Path | None = None) -> Path:
    """The file a relative local source names, refusing anything outside the video root."""
    root = (root or settings.MISIS_VIDEO_ROOT).resolve()
    if not source or Path(source).is_absolute() or ".." in Path(source).parts:
        raise SourceError("local sources are relative paths inside the video root")
    path = (root / source).resolve()  # symlinks too: a link may not lead out of the root
    if not path.is_relative_to(root):
        raise SourceError("the path leaves the video root")
    if path == root:
        raise SourceError("name a file inside the video root")
    return path


class LocalFile(Source):
    schemes = ("",)

    @classmethod
    def validate(cls, url: str) -> None:
        resolve_local(url)

    def target(self, *, open_timeout: float, read_timeout: float) -> Target:
        path = str(resolve_local(self.url))
        if not Path(path).is_file():
            raise SourceError(FILE_NOT_FOUND.format(source=self.url))

        return Target(
            url=path,
            options={"protocol_whitelist": "file", "format_whitelist": FILE_FORMATS},
        )
