"""One step of bench/scale.py's scenario scale (part 1): what it holds, whether it failed, and
its line in the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.common import pct
from bench.scale_measure import CPU_CORES

MISSED_AFTER = 2.0  # a heartbeat older than this (twice the interval) counts as missed


@dataclass
class Step:
    n: int
    ramp_s: float = 0.0
    active: int = 0
    lags: list[float] = field(default_factory=list)
    min_running: int = 0
    restarts: int = 0
    lost: int = 0
    fps: float = 0.0
    dropped: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    mb_per: float = 0.0
    threads: int = 0
    threads_per: float = 0.0
    held: bool = False
    db_conns_max: int = 0
    db_tx: float = 0.0
    redis_ops: float = 0.0
    split: str = ""
    log_marks: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def missed(self) -> float:
        return sum(lag > MISSED_AFTER for lag in self.lags) / max(len(self.lags), 1)


def failed(step: Step, timeout: float) -> bool:
    return bool(
        step.note
        or (step.lags and max(step.lags) > timeout)
        or step.restarts > 0
        or step.lost > 0
        or step.log_marks.get("too many connections")
    )


HEADER = (
    f"{'N':>4} {'held':>4} {'ramp':>5} {'lag p50':>7} {'p99':>6} {'max':>6} {'missed':>6} "
    f"{'rst':>4} {'lost':>4} {'fps':>6} {'fps/N':>5} {'runCPU r1+r2':>12} {'infCPU':>6} "
    f"{'orchCPU':>7} {'apiCPU':>6} {'pgCPU':>5} {'rdCPU':>5} {'sysCPU':>6} {'other':>5} "
    f"{'RSS MB':>6} {'MB/scn':>6} {'thr':>5} {'thr/scn':>7} {'dbcon':>5}"
)


def print_step(step: Step, first: bool) -> None:
    if first:
        print(
            "# lag in s; CPU in % of one core (this machine: "
            f"{CPU_CORES} cores = {100 * CPU_CORES}%); other = machine minus this stack, "
            "PostgreSQL, Redis (rd) and the bench; RSS/threads: both runner processes; "
            f"missed: share of heartbeat samples older than {MISSED_AFTER:g} s; "
            "held: no sample past the timeout, no restart, none lost, all active in time"
        )
        print(HEADER)
    lags = step.lags
    print(
        f"{step.n:>4} {'yes' if step.held else 'NO':>4} {step.ramp_s:>4.1f}s "
        f"{pct(lags, 50):>7.2f} {pct(lags, 99):>6.2f} "
        f"{(max(lags) if lags else float('nan')):>6.2f} {100 * step.missed:>5.1f}% "
        f"{step.restarts:>4} {step.lost:>4} {step.fps:>6.1f} {step.fps / step.n:>5.2f} "
        f"{step.cpu['runner1']:>5.0f}%+{step.cpu['runner2']:>4.0f}% "
        f"{step.cpu['inference']:>5.0f}% "
        f"{step.cpu['orchestrator']:>6.0f}% {step.cpu['api']:>5.0f}% "
        f"{step.cpu['postgres']:>4.0f}% {step.cpu['redis']:>4.0f}% "
        f"{step.cpu['system']:>5.0f}% {step.cpu['other']:>4.0f}% "
        f"{step.rss_mb:>6.0f} {step.mb_per:>6.2f} {step.threads:>5} {step.threads_per:>7.1f} "
        f"{step.db_conns_max:>5}",
        flush=True,
    )
    extra = [
        f"scenarios per runner process {step.split}; PostgreSQL {step.db_tx:.0f} tx/s "
        f"({step.db_tx / step.n:.1f} per scenario); Redis {step.redis_ops:.0f} commands/s "
        f"({step.redis_ops / step.n:.0f} per scenario; server-wide)"
    ]
    if step.note:
        extra.append(step.note)
    if step.min_running < step.n:
        extra.append(f"running fell to {step.min_running}")
    if step.dropped:
        extra.append(f"{step.dropped} frames dropped")
    extra += [f"log '{k}' x{v}" for k, v in step.log_marks.items()]
    print("       " + "; ".join(extra), flush=True)
