"""A small HTTP server for the tests: an endless MJPEG stream and files with Range support.

    .venv/bin/python tests/media_servers/http_server.py --port 8080 --root VIDEO_DIR

``/mjpeg`` is a live MJPEG stream (multipart/x-mixed-replace, 320x240 at about 10 fps, each
frame numbered); any other path is a file under ``--root``, with single byte-range requests
answered by 206 (FFmpeg seeks by Range to the index of an MP4 whose moov atom is at the end, as
OpenCV writes them). Prints ``READY http://127.0.0.1:PORT`` once it listens; ``--port 0`` picks
a free port.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import time
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

import cv2
import numpy as np

BOUNDARY = "frame"
MJPEG_FPS = 10.0
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def mjpeg_frame(index: int, size: tuple[int, int] = (320, 240)) -> bytes:
    w, h = size
    img = np.full((h, w, 3), (index * 7) % 200 + 30, dtype=np.uint8)
    x = (index * 5) % (w - 60)
    cv2.rectangle(img, (x, h // 3), (x + 50, h // 3 + 80), (0, 0, 255), -1)
    cv2.putText(img, str(index), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", img)
    assert ok
    return jpeg.tobytes()


class Handler(SimpleHTTPRequestHandler):
    byte_range: tuple[int, int] | None = None  # of the file being sent, both ends included

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/mjpeg":
            self.send_mjpeg()
        else:
            super().do_GET()

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
