"""Building and loading the C++ kernels: no compiler, a failing or hanging compiler, several
processes building on a cold cache at once, and the thread count the kernels run on."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from spikeexp.functional.fused import build

pytestmark = pytest.mark.skipif(build.kernels() is None, reason="no C++ compiler")

# Runs the fused layers in a fresh process and checks them against the reference loop; prints
# whether the kernels loaded. Shared by the subprocess tests below.
CHILD = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
import torch
import spikeexp as snn
from spikeexp.functional.fused import build
torch.manual_seed(0)
x = torch.randn(20, 3, 70) * 4 + 1
for backend in ("fused", "fused"):  # twice: one warning at most
    spikes = snn.LIF(backend=backend)(x.requires_grad_())[0]
    spikes.sum().backward()
reference = snn.LIF(backend="reference")(x)[0]
assert torch.equal(spikes, reference)
layer = snn.LSNNRecurrent(70, 5)
layer(x)[0].sum().backward()
snn.FusedMaxPool2d(2)(torch.rand(2, 3, 8, 8))
print("loaded" if build.kernels() is not None else "fallback")
"""


def _child(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CXX", "SPIKEEXP_"))}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env={**base, "SPIKEEXP_CACHE_DIR": str(tmp_path / "cache"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[str, list[str]]:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    return stdout.strip(), [line for line in stderr.splitlines() if line.startswith("WARNING")]


def _compiler_wrapper(tmp_path: Path, body: str) -> Path:
    """A ``CXX`` script: ``--version`` answers at once; a compilation appends a line to
    ``compiles.log`` and then runs ``body`` (``$@`` are the compiler arguments)."""
    real = shutil.which("c++") or shutil.which("g++")
    script = tmp_path / "cxx"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then exec {real} --version; fi\n'
        f'echo compile >> "{tmp_path}/compiles.log"\n'
        f"{body.replace('REAL', str(real))}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An empty kernel cache for this test; the process's own kernels are restored after it."""
    monkeypatch.setenv("SPIKEEXP_CACHE_DIR", str(tmp_path / "cache"))
    build.kernels.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    build.kernels.cache_clear()
    assert build.kernels() is not None


def test_hidden_compiler_falls_back_with_one_warning(tmp_path: Path) -> None:
    """No ``c++``/``g++`` on ``PATH`` and no ``CXX``, cold cache: every fused layer runs the
    exact step loop, and the process logs one warning."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    output, warnings = _finish(_child({"PATH": str(empty)}, tmp_path))
    assert output == "fallback"
    assert len(warnings) == 1 and "no C++ compiler found" in warnings[0]
    assert not list((tmp_path / "cache").glob("*.so"))


def test_missing_cxx_names_it(fresh_build: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("CXX", str(fresh_build / "no-such-compiler"))
    with caplog.at_level(logging.WARNING, logger=build.__name__):
        assert build.kernels() is None
        assert build.kernels() is None
    assert len(caplog.records) == 1 and "no-such-compiler" in caplog.records[0].getMessage()


def test_failed_compilation_leaves_nothing_half_written(fresh_build: Path, monkeypatch) -> None:
    """A compiler that writes half a library and fails: one warning, nothing in the cache (the
    output goes to a temporary file that is renamed only after success)."""
    body = 'for a; do out="$a"; done\necho half > "$out"\nexit 1'  # last argument: the output
    monkeypatch.setenv("CXX", str(_compiler_wrapper(fresh_build, body)))
    assert build.kernels() is None
    cache = fresh_build / "cache"
    leftovers = list(cache.iterdir())  # the build locks (with and without OpenMP) only
    assert leftovers and all(p.is_file() and p.suffix == ".lock" for p in leftovers)


def test_build_timeout(fresh_build: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("CXX", str(_compiler_wrapper(fresh_build, "exec sleep 30")))
    monkeypatch.setenv("SPIKEEXP_BUILD_TIMEOUT", "0.5")
    with caplog.at_level(logging.WARNING, logger=build.__name__):
        assert build.kernels() is None
    [record] = caplog.records
    assert "took longer than 0.5 s" in record.getMessage()
    assert (fresh_build / "compiles.log").read_text().count("compile") == 1  # no second try


def test_waiting_for_another_build_times_out(fresh_build: Path, monkeypatch, caplog) -> None:
    """Another process holds the build lock (compiling) longer than the timeout."""
    monkeypatch.setenv("SPIKEEXP_BUILD_TIMEOUT", "0.3")
    compiler = build.find_compiler()
    assert compiler is not None
    target = build._library_path(compiler, (*build.FLAGS, build.OPENMP), 1.0)
    target.parent.mkdir(parents=True)
    with open(target.with_suffix(".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with caplog.at_level(logging.WARNING, logger=build.__name__):
            assert build.kernels() is None
    assert "another process held" in caplog.records[0].getMessage()


def test_bad_timeout_setting_is_reported(fresh_build: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SPIKEEXP_BUILD_TIMEOUT", "soon")
    with caplog.at_level(logging.WARNING, logger=build.__name__):
        assert build.kernels() is None
    assert "SPIKEEXP_BUILD_TIMEOUT must be a number of seconds (got 'soon')" in caplog.text


@pytest.mark.slow
@pytest.mark.ci
def test_cold_cache_build_by_several_processes_at_once(tmp_path: Path) -> None:
    """Four processes (parallel sweep trials, DDP ranks) start on an empty cache at once: the
    compiler runs once, all four load the complete library, nothing else is left behind."""
    cxx = _compiler_wrapper(tmp_path, 'sleep 1\nexec REAL "$@"')  # widen the race window
    processes = [_child({"CXX": str(cxx)}, tmp_path) for _ in range(4)]
    results = [_finish(process) for process in processes]
    assert results == [("loaded", [])] * 4
    assert (tmp_path / "compiles.log").read_text().count("compile") == 1
    names = sorted(p.suffix for p in (tmp_path / "cache").iterdir())
    assert names == [".lock", ".so"]


def test_kernels_run_on_torch_threads() -> None:
    """``torch.set_num_threads`` sets the kernels' team size, in any calling thread, and the
    library shares PyTorch's OpenMP runtime: one file with the soname ``libgomp.so.1`` in the
    process maps (packages may bring renamed private copies, e.g. scikit-learn's)."""
    before = torch.get_num_threads()
    seen: list[int] = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            assert build.team_size() == threads
        torch.set_num_threads(2)
        worker = threading.Thread(target=lambda: seen.append(build.team_size()))
        worker.start()
        worker.join()
    finally:
        torch.set_num_threads(before)
    assert seen == [2]
    with open("/proc/self/maps", encoding="utf-8") as maps:
        runtimes = {line.split()[-1] for line in maps if line.rstrip().endswith("/libgomp.so.1")}
    assert len(runtimes) == 1
