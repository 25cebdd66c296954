"""Shared by the benchmark scripts: the machine header, interleaved timing rounds, and the 1- vs
2-thread ratio of a reference workload (a slow or shared machine shows itself there)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import torch


def cpu_model() -> str:
    """The CPU model as ``lscpu`` names it (``/proc/cpuinfo`` or the platform as fallbacks)."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in output.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_header(threads: int) -> str:
    """One line: date, CPU model and count, threads used, load average, torch version."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')}; {cpu_model()} ({os.cpu_count()} CPUs); "
        f"{threads} torch threads; load average before the run {load}; torch {torch.__version__}"
    )


def time_once(step: Callable[[], object], calls: int) -> float:
    """Mean seconds of ``calls`` consecutive calls of ``step``."""
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


def calls_for(step: Callable[[], object], min_seconds: float) -> int:
    """Warm ``step`` up (first-use costs) and return how many consecutive calls take at least
    ``min_seconds`` (one measurement of a round)."""
    step()
    once = time_once(step, 1)
    return max(1, int(min_seconds / max(once, 1e-6)) + 1) if once < min_seconds else 1


def interleaved(
    steps: dict[str, Callable[[], object]], rounds: int, min_seconds: float = 0.02
) -> dict[str, list[float]]:
    """Seconds per call of every step, one measurement per step and round, the steps taking
    turns within each round (starting one later each round), so that a change of machine speed
    during the run affects all of them alike; the caller takes medians over the rounds."""
    names = list(steps)
    calls = {name: calls_for(steps[name], min_seconds) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            times[name].append(time_once(steps[name], calls[name]))
    return times


def median_ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


def thread_ratio(step: Callable[[], object], threads: int, rounds: int) -> tuple[float, float]:
    """Median seconds of ``step`` on 1 thread and on ``threads`` threads, interleaved."""
    previous = torch.get_num_threads()

    def on(count: int) -> Callable[[], object]:
        def run() -> object:
            torch.set_num_threads(count)
            try:
                return step()
            finally:
                torch.set_num_threads(previous)

        return run

    times = interleaved({"one": on(1), "many": on(threads)}, rounds)
    return statistics.median(times["one"]), statistics.median(times["many"])
