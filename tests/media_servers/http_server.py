"""A small HTTP server for the tests: an endless MJPEG stream, HLS, and files with Range support.

    .venv/bin/python tests/media_servers/http_server.py --port 8080 --root VIDEO_DIR

``/mjpeg`` is a live MJPEG stream (multipart/x-mixed-replace, 320x240 at about 10 fps, each
frame numbered). ``/hls/vod/NAME.m3u8`` and ``/hls/live/NAME.m3u8`` are HLS made from
``ROOT/NAME.mp4``: MPEG-TS segments of about a second, re-encoded on the first request and kept
in memory; VOD lists them all and ends, live is a sliding window that moves on in real time and
loops the file forever. Any other path is a file under ``--root``, with single byte-range
requests answered by 206 (FFmpeg seeks by Range to the index of an MP4 whose moov atom is at the
end, as OpenCV writes them). Prints ``READY http://127.0.0.1:PORT`` once it listens; ``--port
0`` picks a free port.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import io
import itertools
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

BOUNDARY = "frame"
MJPEG_FPS = 10.0
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
HLS = re.compile(r"/hls/(vod|live)/([\w.-]+?)(?:\.(\d+)\.ts|\.m3u8)$")
SEGMENT_S = 1.0
SEGMENT_FOURCC = cv2.VideoWriter.fourcc(*"mp4v")
LIVE_WINDOW = 5  # segments in a live playlist; FFmpeg starts 3 from its end
STARTED = time.monotonic()  # the live playlists' clock: a restarted server starts them again


def mjpeg_frame(index: int, size: tuple[int, int] = (320, 240)) -> bytes:
    w, h = size
    img = np.full((h, w, 3), (index * 7) % 200 + 30, dtype=np.uint8)
    x = (index * 5) % (w - 60)
    cv2.rectangle(img, (x, h // 3), (x + 50, h // 3 + 80), (0, 0, 255), -1)
    cv2.putText(img, str(index), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", img)
    assert ok
    return jpeg.tobytes()


class Segments:
    """A video cut into MPEG-TS segments of about SEGMENT_S seconds, each playable on its own.

    OpenCV's FFmpeg has no H.264 encoder, so the segments are MPEG-4 Part 2 (``mp4v``), which
    FFmpeg's HLS demuxer reads as well. Every segment is written by its own VideoWriter: its
    timestamps start again, as after an ``#EXT-X-DISCONTINUITY``.
    """

    def __init__(self, path: Path) -> None:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        per_segment = max(1, round(fps * SEGMENT_S))
        self.durations: list[float] = []
        self.data: list[bytes] = []
        with tempfile.TemporaryDirectory() as tmp:
            ts = str(Path(tmp) / "segment.ts")
            ok, frame = cap.read()
            while ok:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(ts, cv2.CAP_FFMPEG, SEGMENT_FOURCC, fps, (w, h))
                assert writer.isOpened(), f"OpenCV cannot write {ts}"
                frames = 0
                while ok and frames < per_segment:
                    writer.write(frame)
                    frames += 1
                    ok, frame = cap.read()
                writer.release()
                self.durations.append(frames / fps)
                self.data.append(Path(ts).read_bytes())
        cap.release()
        self.ends = list(itertools.accumulate(self.durations))
        self.target = math.ceil(max(self.durations, default=SEGMENT_S))

    def playlist(self, name: str, *, live: bool) -> str:
        if live:
            # The segment being "recorded" now is the newest; earlier ones slide out.
            loops, into = divmod(time.monotonic() - STARTED, self.ends[-1])
            first = int(loops) * len(self.data) + bisect.bisect(self.ends, into)
            numbers = range(first, first + LIVE_WINDOW)
        else:
            first, numbers = 0, range(len(self.data))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        if not live:
            lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        for n in numbers:
            lines += [f"#EXTINF:{self.durations[n % len(self.data)]:.3f},", f"{name}.{n}.ts"]
        if not live:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


SEGMENTS: dict[Path, Segments] = {}
SEGMENTS_LOCK = threading.Lock()


def segments_of(path: Path) -> Segments:
    with SEGMENTS_LOCK:  # requests come in threads; cut each file once
        if path not in SEGMENTS:
            SEGMENTS[path] = Segments(path)
        return SEGMENTS[path]


class Handler(SimpleHTTPRequestHandler):
    byte_range: tuple[int, int] | None = None  # of the file being sent, both ends included

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/mjpeg":
            self.send_mjpeg()
        elif m := HLS.match(path):
            self.send_hls(live=m[1] == "live", name=m[2], number=m[3])
        else:
            super().do_GET()

    def send_hls(self, *, live: bool, name: str, number: str | None) -> None:
        source = Path(self.directory) / f"{name}.mp4"
        if not source.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        segments = segments_of(source)
        if number is None:
            body = segments.playlist(name, live=live).encode()
            content_type = "application/vnd.apple.mpegurl"
        elif live or int(number) < len(segments.data):
            body = segments.data[int(number) % len(segments.data)]
            content_type = "video/mp2t"
        else:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client left
            self.wfile.write(body)

    def send_mjpeg(self) -> None:
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        index, start = 0, time.monotonic()
        try:
            while True:
                jpeg = mjpeg_frame(index)
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                self.wfile.flush()
                index += 1
                time.sleep(max(0.0, start + index / MJPEG_FPS - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        """The parent's answer, narrowed to the requested byte range when there is one."""
        self.byte_range = None
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if header is None or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        m = RANGE.match(header.strip())
        if m is None or m.groups() == ("", ""):
            return super().send_head()  # not one satisfiable range: ignore the header
        if m[1]:
            first, last = int(m[1]), min(int(m[2] or size - 1), size - 1)
        else:  # bytes=-N: the last N bytes
            first, last = max(size - int(m[2]), 0), size - 1
        if first >= size or first > last:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")  # noqa: SIM115 (closed by the caller, as in the parent)
        f.seek(first)
        self.byte_range = (first, last)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return f

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        if self.byte_range is None:
            shutil.copyfileobj(source, outputfile)
            return
        first, last = self.byte_range
        left = last - first + 1
        while left > 0 and (chunk := source.read(min(left, 64 * 1024))):
            outputfile.write(chunk)
            left -= len(chunk)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests read stderr only when the server fails


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--root", default=".", help="the directory whose files are served")
    args = parser.parse_args()
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), partial(Handler, directory=args.root))
    server.daemon_threads = True
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
