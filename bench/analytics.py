"""Cost of the analytics step per frame: tracking + zones + lines at 1, 20 and 100 boxes.

    python -m bench.analytics [--frames 300] [--rounds 3]

Synthetic people walk across a 1280x720 frame past two zones and two lines (what a
scenario with analytics on configures); each round runs a fresh engine over the same frames.
Prints the time per frame for each box count, per round, and the range over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from analytics.config import AnalyticsConfig
from analytics.engine import Analytics

W, H = 1280, 720
PARAMS: dict[str, Any] = {
    "zones": [
        {"name": "left", "polygon": [[0.0, 0.0], [0.3, 0.0], [0.3, 1.0], [0.0, 1.0]], "dwell": 5},
        {"name": "door", "polygon": [[0.6, 0.2], [0.9, 0.2], [0.9, 0.9], [0.6, 0.9]]},
    ],
    "lines": [
        {"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]]},
        {"name": "gate", "points": [[0.2, 0.6], [0.8, 0.6]]},
    ],
}


def frames(boxes: int, count: int) -> list[list[dict[str, Any]]]:
    """``boxes`` people on a grid, each walking right at its own speed (wrapping round)."""
    out = []
    for i in range(count):
        row = []
        for b in range(boxes):
            x = (60 + b * 97 + i * (3 + b % 5)) % (W - 60)
            y = 150 + (b * 53) % (H - 200)
            row.append({"label": "person", "class_id": 0, "confidence": 0.8,
                        "x1": x, "y1": y - 120, "x2": x + 50, "y2": y})  # fmt: skip
        out.append(row)
    return out


def per_frame_ms(boxes: int, count: int) -> float:
    data = frames(boxes, count)
    engine = Analytics(AnalyticsConfig.from_params(PARAMS), fps=5)
    started = time.perf_counter()
    for i, row in enumerate(data):
        engine.process(frame_index=i, pts=i / 5, width=W, height=H, boxes=[dict(b) for b in row])
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, list[float]] = {1: [], 20: [], 100: []}
    for r in range(args.rounds):
        for boxes in results:
            results[boxes].append(per_frame_ms(boxes, args.frames))
        print(
            f"round {r + 1}: " + ", ".join(f"{b} boxes {v[-1]:.2f} ms" for b, v in results.items())
        )
    print(f"\nper frame, {args.frames} frames, 2 zones + 2 lines, {args.rounds} rounds")
    for boxes, values in results.items():
        print(f"{boxes:4} boxes: {min(values):.2f} - {max(values):.2f} ms"
              f" (median {statistics.median(values):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
