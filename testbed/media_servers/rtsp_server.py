"""A small RTSP server for the tests: a live test pattern and a looped file, like a camera.

Runs under Debian's /usr/bin/python3 (PyGObject and gst-rtsp-server come from apt, not the venv):

    /usr/bin/python3 testbed/media_servers/rtsp_server.py --port 8554 --file loop.mp4

Mounts: /test (H.264 test pattern, 320x240 at 25 fps) and /file (the file's own frames, looped
forever, paced in real time). Prints ``READY rtsp://127.0.0.1:PORT`` once it listens; ``--port 0``
picks a free port (the READY line names it). With ``--tls-cert cert.pem --tls-key key.pem`` it
speaks RTSP over TLS only (RTSPS, interleaved over TCP) and says ``READY rtsps://...``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# key-int-max is short so that a client that (re)connects gets a keyframe within a second. 25 fps,
# not 15: FFmpeg probes about 30 frames of an H.264 stream before it opens (1.2 s here, 2 s at 15).
TEST_PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1"
    " ! videoconvert ! video/x-raw,format=I420"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=500"
    " ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
PAYLOADERS = {
    "video/x-h264": "rtph264pay name=pay0 pt=96 config-interval=1",
    "video/x-h265": "rtph265pay name=pay0 pt=96 config-interval=1",
    "video/mpeg": "rtpmp4vpay name=pay0 pt=96 config-interval=1",
}
# The role of clients without credentials when an auth object exists only for TLS: an auth
# object turns access checks on, and without a default token every mount answers them 401.
ANONYMOUS = "anonymous"


def read_samples(path: str) -> tuple[Gst.Caps, list[Gst.Buffer], int]:
    """Every encoded video frame of the file, its caps and the frame duration in ns.

    The file is not decoded: Debian's GStreamer lacks an MPEG-4 part 2 decoder (OpenCV writes
    mp4v), so /file sends the file's own frames; any codec with a payloader above works.
    """
    pipeline = Gst.parse_launch(
        "filesrc name=file ! qtdemux name=d d.video_0 ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("file").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    buffers: list[Gst.Buffer] = []
    caps = None
    # None at the end of the file, and also after an error (then the bus says which).
    while (sample := sink.emit("try-pull-sample", 5 * Gst.SECOND)) is not None:
        caps = sample.get_caps()
        buffers.append(sample.get_buffer())
    error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if error is not None:
        raise SystemExit(f"cannot read {path}: {error.parse_error()[0].message}")
    if caps is None or not buffers:
        raise SystemExit(f"no video frames in {path}")
    duration = buffers[0].duration
    if duration == Gst.CLOCK_TIME_NONE or duration <= 0:
        duration = Gst.SECOND // 25
    return caps, buffers, duration


class LoopedFile:
    """Feeds each client's appsrc with the file's frames in a loop, one per frame duration.

    The appsrc is live and stamps buffers as they are pushed, so timestamps run on across the
    loop and a client connecting at any time gets frames from the first (key) frame on.
    """

    def __init__(self, path: str) -> None:
        self.caps, self.buffers, self.duration = read_samples(path)
        name = self.caps.get_structure(0).get_name()
        if name not in PAYLOADERS:
            raise SystemExit(f"no RTP payloader for {name} in {path}")
        # Bounded: a paused client must not make it queue frames without end.
        self.launch = (
            "( appsrc name=src is-live=true format=time do-timestamp=true"
            f" max-buffers=100 leaky-type=downstream ! {PAYLOADERS[name]} )"
        )

    def on_media_configure(self, _factory: Any, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", self.caps)
        frame = 0

        def push() -> bool:
            nonlocal frame
            buf = self.buffers[frame % len(self.buffers)].copy()
            buf.pts = buf.dts = Gst.CLOCK_TIME_NONE  # do-timestamp stamps it with running time
            frame += 1
            # Anything but OK means the media was torn down (client gone): stop feeding it.
            return bool(appsrc.emit("push-buffer", buf) == Gst.FlowReturn.OK)

        GLib.timeout_add(max(self.duration // Gst.MSECOND, 1), push)


def make_auth(user: str | None, password: str, method: str) -> GstRtspServer.RTSPAuth:
    auth = GstRtspServer.RTSPAuth()
    if not user:
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", ANONYMOUS)
        auth.set_default_token(token)
        return auth
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    # One method: the bindings take the method set as an enum, so BASIC|DIGEST does not pass.
    if method == "digest":
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    return auth


def set_tls(auth: GstRtspServer.RTSPAuth, cert: str, key: str) -> None:
    """Every connection then starts with a TLS handshake (gst-rtsp-server has no STARTTLS)."""
    if not Gio.TlsBackend.get_default().supports_tls():
        raise SystemExit("GIO has no TLS backend: apt-get install glib-networking")
    try:
        certificate = Gio.TlsCertificate.new_from_files(cert, key)
    except GLib.Error as exc:
        raise SystemExit(f"cannot load {cert} / {key}: {exc.message}") from None
    auth.set_tls_certificate(certificate)
    # The server does not ask clients for a certificate, as cameras do not.
    auth.set_tls_authentication_mode(Gio.TlsAuthenticationMode.NONE)


def make_factory(launch: str, role: str | None) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    if role:
        factory.add_role_from_structure(
            Gst.Structure.from_string(
                f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )[0]
        )
    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554, help="0: any free port")
    parser.add_argument("--file", help="a video file to serve looped at /file")
    parser.add_argument("--user", help="require RTSP authentication with this user")
    parser.add_argument("--password", default="")
    parser.add_argument("--auth", choices=["digest", "basic"], default="digest")
    parser.add_argument("--tls-cert", help="serve RTSPS with this PEM certificate")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    role = None
    if args.user or args.tls_cert:
        auth = make_auth(args.user, args.password, args.auth)
        role = args.user or ANONYMOUS
        if args.tls_cert:
            set_tls(auth, args.tls_cert, args.tls_key)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    test = make_factory(TEST_PIPELINE, role)
    test.set_shared(True)  # one encoder for every client, like a camera
    mounts.add_factory("/test", test)
    if args.file:
        looped = LoopedFile(args.file)
        factory = make_factory(looped.launch, role)
        factory.connect("media-configure", looped.on_media_configure)
        mounts.add_factory("/file", factory)

    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    scheme = "rtsps" if args.tls_cert else "rtsp"
    print(f"READY {scheme}://127.0.0.1:{server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
