"""Where a runner process spends its CPU during a step of bench/scale.py (``--profile``).

py-spy (a sampling profiler that reads the process from outside, without pausing it) records
one runner worker for the step's measuring window; this prints the functions with the largest
share of the samples, by time in the function and below it (inclusive) and in the function
itself (self), grouped by the project's module or the library's package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy (requirements/test.txt)")
    return found


class Recording:
    """``py-spy record`` of one process, running while a step is measured."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "50",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def report(self, top: int = 14) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # py-spy itself starved on a loaded machine
            self.proc.kill()
            self.proc.wait()
            print("       profile: py-spy did not finish within a minute; none this step")
            return
        if not self.out.exists():
            print(f"       profile: py-spy wrote nothing (exit {self.proc.returncode})")
            return
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_name(f) for f in stack.split(";")[1:]]  # the first is the thread
            for name in set(frames) - _ENTRY:
                inclusive[name] += n
            if frames:
                own[frames[-1]] += n
        if not total:
            print("       profile: no samples")
            return
        print(f"       profile of runner1 ({total} samples, {self.out}):")
        for title, counter in (("inclusive", inclusive), ("self", own)):
            rows = ", ".join(
                f"{name} {100 * n / total:.0f}%" for name, n in counter.most_common(top)
            )
            print(f"         {title}: {rows}")


# Every thread starts in these: present in (nearly) every sample, they say nothing.
_ENTRY = {
    "threading.Thread._bootstrap",
    "threading.Thread._bootstrap_inner",
    "threading.Thread.run",
}


def _name(frame: str) -> str:
    """``func (path/to/module.py:12)`` as ``module.func`` (the project) or ``package:func``."""
    func, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return f"{package}:{func}"
    parts = Path(path).with_suffix("").parts
    module = ".".join(parts[-2:]) if parts else path
    return f"{module}.{func}"
