"""A small HTTP server for the tests: an endless MJPEG stream, HLS, and files with Range support.

    .venv/bin/python testbed/media_servers/http_server.py --port 8080 --root VIDEO_DIR

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
TS_PACKET = 188
TS_VIDEO_PID = 0x100  # FFmpeg's muxer numbers streams from here; tables (PAT, PMT, SDT) elsewhere
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
    """A video re-encoded into one MPEG-TS stream and cut into segments of SEGMENT_S seconds
    or a little more (up to the next keyframe): timestamps run on across segments, as from a
    real HLS packager.

    OpenCV's FFmpeg has no H.264 encoder, so the video is MPEG-4 Part 2 (``mp4v``), which
    FFmpeg's HLS demuxer reads as well. Its encoder puts a keyframe at least every 12 frames
    and takes no options from OpenCV (OPENCV_FFMPEG_WRITER_OPTIONS="g;25" changes nothing).
    """

    def __init__(self, path: Path) -> None:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        per_segment = max(1, round(fps * SEGMENT_S))
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cut: list[tuple[int, bytes]] = []  # none when the file is no video
        with tempfile.TemporaryDirectory() as tmp:
            ts = Path(tmp) / "video.ts"
            writer = cv2.VideoWriter(str(ts), cv2.CAP_FFMPEG, SEGMENT_FOURCC, fps, size)
            if cap.isOpened() and writer.isOpened():
                ok, image = cap.read()
                while ok:
                    writer.write(image)
                    ok, image = cap.read()
                writer.release()
                cut = cut_at_keyframes(ts.read_bytes(), per_segment)
        cap.release()
        self.durations = [frames / fps for frames, _ in cut]
        self.data = [data for _, data in cut]
        self.ends = list(itertools.accumulate(self.durations))
        self.target = math.ceil(max(self.durations, default=SEGMENT_S))

    def playlist(self, name: str, *, live: bool) -> str:
        if live:
            # As if LIVE_WINDOW segments were out when the server started: the window moves
            # on by one segment each time a segment's duration has passed.
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
            if n % len(self.data) == 0 and n > first:
                lines.append("#EXT-X-DISCONTINUITY")  # looped: timestamps start again
            lines += [f"#EXTINF:{self.durations[n % len(self.data)]:.3f},", f"{name}.{n}.ts"]
        if not live:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


def cut_at_keyframes(ts: bytes, frames_per_segment: int) -> list[tuple[int, bytes]]:
    """(frames, bytes) of segments of at least ``frames_per_segment`` frames, each opening
    with the PAT and PMT that FFmpeg's muxer writes right before a keyframe (after non-key
    frames), so that a player can start at any of them."""
    segments: list[tuple[int, bytes]] = []
    start, frames, tables = 0, 0, None  # tables: where the run of table packets began
    for offset in range(0, len(ts), TS_PACKET):
        packet = ts[offset : offset + TS_PACKET]
        if (packet[1] & 0x1F) << 8 | packet[2] != TS_VIDEO_PID:
            tables = offset if tables is None else tables
            continue
        if packet[1] & 0x40:  # payload unit start: a frame begins
            random_access = packet[3] & 0x20 and packet[4] and packet[5] & 0x40
            if random_access and tables is not None and frames >= frames_per_segment:
                segments.append((frames, ts[start:tables]))
                start, frames = tables, 0
            frames += 1
        tables = None
    if frames:
        segments.append((frames, ts[start:]))
    return segments


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
        segments = segments_of(source) if source.is_file() else None
        if segments is None or not segments.data:  # no such file, or no video in it
            self.send_error(HTTPStatus.NOT_FOUND)
            return
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
