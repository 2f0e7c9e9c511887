"""Live-source figures on this machine, one run, real servers and processes over loopback.

    .venv/bin/python -m bench.sources [--rounds 5]

Against GStreamer's RTSP server (testbed/media_servers/rtsp_server.py, a 25 fps H.264 pattern)
and the fake ONVIF camera of the tests, with the stack at its default stream settings
(open timeout 10 s, read timeout 5 s, backoff 0.5 s doubling): POST-to-first-prediction for
rtsp:// and onvif:// sources, how long a killed and a frozen server take to be noticed, and how
long after the server is back the scenario publishes again. Uses its own database (misis_bench)
and Redis database 13.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from bench.common import Api, bench_token, fresh_database, start_stack, wait

PORT = 8766
api = Api(PORT)


def scenario(sid: str, token: str) -> dict[str, Any]:
    return dict(api.call("GET", f"/scenario/{sid}/", token))


_seen: dict[str, int] = {}


def next_prediction(sid: str, token: str, timeout: float) -> float:
    """Seconds until a prediction newer than any seen so far is published."""
    t0 = time.perf_counter()
    after = _seen.get(sid, -1)

    def newer() -> int | None:
        rows = api.call("GET", f"/prediction/{sid}/?after={after}&limit=1000", token)["results"]
        return rows[-1]["frame_index"] if rows else None

    _seen[sid] = wait(newer, timeout, interval=0.05)
    return time.perf_counter() - t0


def state(sid: str, token: str) -> str | None:
    stream = scenario(sid, token)["stream"]
    return None if stream is None else str(stream["state"])


def fmt(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    fresh_database()

    from testbed.media_servers.onvif_answers import default_profiles
    from testbed.media_servers.onvif_device import OnvifDevice
    from testbed.media_servers.servers import RtspServer

    token = bench_token()
    work, stack = start_stack(api, video_frames=100)
    rtsp = RtspServer(work / "videos" / "loop.mp4", work / "rtsp.log")
    rtsp.start()
    camera = OnvifDevice(user="admin", password="pw", profiles=default_profiles()).start()
    camera.set_stream_uri("main", rtsp.url("test"))
    try:
        print(f"# live-source bench: {args.rounds} rounds, mock detector (10 ms)")
        first: dict[str, list[float]] = {"rtsp": [], "onvif": []}
        for _ in range(args.rounds):
            for kind, source in (("rtsp", rtsp.url("test")), ("onvif", camera.source)):
                t0 = time.perf_counter()
                sid = api.call("POST", "/scenario/", token, {"source": source})["id"]
                _seen[sid] = -1
                next_prediction(sid, token, 30)
                first[kind].append(time.perf_counter() - t0)
                api.call("POST", f"/scenario/{sid}/", token, {"status": "init_shutdown"})
        print(f"POST -> first prediction, rtsp://  : {fmt(first['rtsp'])}")
        print(f"POST -> first prediction, onvif:// : {fmt(first['onvif'])}")

        sid = api.call("POST", "/scenario/", token, {"source": rtsp.url("test")})["id"]
        _seen[sid] = -1
        next_prediction(sid, token, 30)
        noticed: dict[str, list[float]] = {"kill": [], "freeze": []}
        back: list[float] = []
        for i in range(args.rounds):
            how = "kill" if i % 2 == 0 else "freeze"
            next_prediction(sid, token, 30)
            t0 = time.perf_counter()
            rtsp.kill() if how == "kill" else rtsp.freeze()
            wait(lambda: state(sid, token) == "reconnecting", 30, interval=0.05)
            noticed[how].append(time.perf_counter() - t0)
            time.sleep(1.0)  # the camera stays away a moment
            rows = api.call("GET", f"/prediction/{sid}/?after={_seen[sid]}&limit=1000", token)
            if rows["results"]:  # frames read before the outage, published during it
                _seen[sid] = rows["results"][-1]["frame_index"]
            if how == "kill":
                rtsp.start()
            else:
                rtsp.thaw()
            back.append(next_prediction(sid, token, 60))
        print(f"server killed  -> 'reconnecting' : {fmt(noticed['kill'])}")
        print(f"server frozen  -> 'reconnecting' : {fmt(noticed['freeze'])}  (read timeout 5 s)")
        print(f"server back    -> next prediction: {fmt(back)}")
        print(f"reconnects counted: {scenario(sid, token)['stream']['reconnects']}")
    finally:
        stack.stop_all()
        rtsp.kill()
        camera.stop()


if __name__ == "__main__":
    main()
