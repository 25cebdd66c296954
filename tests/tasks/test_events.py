"""Event tasks on small files the tests write in the published layouts: SHD/SSC (HDF5) and
N-MNIST (40-bit binary events); binning checked against hand-computed bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.tasks.events import bin_events, num_bins
from spikeexp.tasks.nmnist import NMNISTDataModule
from spikeexp.tasks.shd import SpikingAudioDataModule
from tests.helpers import compose_like_cli

h5py = pytest.importorskip("h5py")


# ---------------------------------------------------------------- writers (independent of readers)


def write_spike_file(
    path: Path,
    times: list[list[float]],
    units: list[list[int]],
    labels: list[int],
    time_dtype: str = "float32",
) -> Path:
    """An HDF5 file in the published SHD/SSC layout (spikes/times, spikes/units, labels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        spikes = handle.create_group("spikes")
        times_set = spikes.create_dataset(
            "times", (len(times),), dtype=h5py.vlen_dtype(np.dtype(time_dtype))
        )
        units_set = spikes.create_dataset(
            "units", (len(units),), dtype=h5py.vlen_dtype(np.dtype("uint16"))
        )
        for index, (sample_times, sample_units) in enumerate(zip(times, units, strict=True)):
            times_set[index] = np.asarray(sample_times, dtype=time_dtype)
            units_set[index] = np.asarray(sample_units, dtype="uint16")
        handle.create_dataset("labels", data=np.asarray(labels, dtype="uint16"))
        handle.create_dataset("extra/speaker", data=np.zeros(len(labels), dtype="uint16"))
    return path


def random_recordings(count: int, classes: int, seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(count):
        size = int(rng.integers(20, 60))
        times.append(np.sort(rng.uniform(0.0, 0.06, size)).tolist())
        units.append(rng.integers(0, 700, size).tolist())
    return times, units, (np.arange(count) % classes).tolist()


def write_shd(root: Path, train: int = 24, test: int = 8) -> None:
    write_spike_file(root / "shd_train.h5", *random_recordings(train, 20, seed=1))
    write_spike_file(root / "shd_test.h5", *random_recordings(test, 20, seed=2))


def event_bytes(x: int, y: int, p: int, t_us: int) -> bytes:
    """One 40-bit N-MNIST event: x, y, then polarity bit and the 23-bit timestamp (µs)."""
    return bytes([x, y, (p << 7) | ((t_us >> 16) & 0x7F), (t_us >> 8) & 0xFF, t_us & 0xFF])


def write_nmnist(root: Path, per_digit: int = 2, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for folder, count in (("Train", per_digit * 2), ("Test", per_digit)):
        for digit in range(10):
            for sample in range(count):
                events = b"".join(
                    event_bytes(
                        int(rng.integers(0, 34)),
                        int(rng.integers(0, 34)),
                        int(rng.integers(0, 2)),
                        int(t),
                    )
                    for t in np.sort(rng.integers(0, 40_000, 50))
                )
                path = root / folder / str(digit) / f"{sample:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(events)


# ---------------------------------------------------------------- binning


def test_bin_events_by_hand() -> None:
    times = np.array([0.0, 0.004, 0.0105, 0.0105, 0.031, 0.05, -0.001])
    channels = np.array([0, 3, 3, 3, 5, 1, 2])
    counts = bin_events(times, channels, 0.01, bins=4, num_channels=6)
    expected = torch.zeros(4, 6)
    expected[0, 0] = expected[0, 3] = 1  # 0.0 and 0.004 in [0, 10 ms)
    expected[1, 3] = 2  # two events at 10.5 ms
    expected[3, 5] = 1  # 31 ms; 50 ms is past 4 bins, -1 ms before the start: dropped
    assert torch.equal(counts, expected)
    assert torch.equal(bin_events(times, channels, 0.01, 4, 6, binary=True), expected.clamp(max=1))


def test_integer_times_bin_exactly() -> None:
    times = np.array([0, 999, 1000, 2999, 3000])  # microseconds, bins of 1000 us
    counts = bin_events(times, np.zeros(5, dtype=np.int64), 1000.0, bins=3, num_channels=1)
    assert counts[:, 0].tolist() == [2, 1, 1]


def test_num_bins_covers_the_duration() -> None:
    assert num_bins(1.0, 4e-3) == 250
    assert num_bins(0.3, 7e-3) == 43  # 42.86 -> 43 bins, the last reaching past 300 ms


# ---------------------------------------------------------------- SHD / SSC


def test_shd_reader_bins_recordings_by_hand(tmp_path: Path) -> None:
    write_spike_file(
        tmp_path / "shd_train.h5",
        [[0.0, 0.0049, 0.0052, 0.0101, 0.03], [0.019]] * 5,
        [[10, 10, 10, 699, 1], [5]] * 5,
        [3, 19] * 5,
    )
    write_spike_file(tmp_path / "shd_test.h5", [[0.0121]], [[2]], [7])
    data = SpikingAudioDataModule(
        root=str(tmp_path), bin_width=0.005, duration=0.02, val_fraction=0.2, batch_size=4
    )
    data.setup()
    assert data.input_shape == (4, 700) and data.num_classes == 20
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (8, 2, 1)
    x, y = data.test_set[0]
    expected = torch.zeros(4, 700)
    expected[2, 2] = 1  # 12.1 ms in [10, 15) ms
    assert torch.equal(x, expected) and int(y) == 7
    first = data.binned("train", 0)
    assert first[0, 10] == 2 and first[1, 10] == 1 and first[2, 699] == 1  # 30 ms dropped
    assert first.sum() == 4
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 4, 700) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_ssc_uses_its_validation_file(tmp_path: Path) -> None:
    for split, count in (("train", 12), ("valid", 5), ("test", 4)):
        write_spike_file(
            tmp_path / "SSC" / f"ssc_{split}.h5", *random_recordings(count, 35, seed=count)
        )
    data = SpikingAudioDataModule(dataset="ssc", root=str(tmp_path), bin_width=0.01)
    data.setup()
    assert data.num_classes == 35
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (12, 5, 4)


def test_float16_times_are_read(tmp_path: Path) -> None:
    """Times stored as half floats (compact files) are binned like any float."""
    write_spike_file(tmp_path / "shd_train.h5", [[0.25]] * 4, [[1]] * 4, [0] * 4, "float16")
    write_spike_file(tmp_path / "shd_test.h5", [[0.75]], [[1]], [0], "float16")
    data = SpikingAudioDataModule(root=str(tmp_path), bin_width=0.5, duration=1.0)
    data.setup()
    assert data.test_set[0][0][:, 1].tolist() == [0.0, 1.0]


def _broken(tmp_path: Path, problem: str) -> Path:
    path = tmp_path / "shd_train.h5"
    if problem == "not_hdf5":
        path.write_bytes(b"not an hdf5 file")
    elif problem == "no_units":
        with h5py.File(path, "w") as handle:
            handle.create_dataset("spikes/times", data=np.zeros(2))
            handle.create_dataset("labels", data=np.zeros(2, dtype="uint16"))
    elif problem == "count":
        write_spike_file(path, [[0.1], [0.2]], [[1], [2]], [0])
    elif problem == "lengths":
        write_spike_file(path, [[0.1, 0.2], [0.2]], [[1], [2]], [0, 1])
    elif problem == "unit":
        write_spike_file(path, [[0.1], [0.2]], [[1], [700]], [0, 1])
    elif problem == "label":
        write_spike_file(path, [[0.1], [0.2]], [[1], [2]], [0, 20])
    elif problem == "negative":
        write_spike_file(path, [[0.1], [-0.2]], [[1], [2]], [0, 1])
    write_shd(tmp_path / "ok")
    (tmp_path / "shd_test.h5").write_bytes((tmp_path / "ok" / "shd_test.h5").read_bytes())
    return path


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("not_hdf5", "is not a readable HDF5 file"),
        ("no_units", "has no dataset 'spikes/units' .*spikes/times, spikes/units and labels"),
        ("count", "must have one entry per recording \\(got 2, 2 and 1\\)"),
        ("lengths", "recording 0 has 2 spike times but 1 units"),
        ("unit", "recording 1 has unit 700 out of range \\(valid: 0..699\\)"),
        ("label", "label 20 out of range \\(valid: 0..19\\)"),
        ("negative", "recording 1 has a negative or non-finite spike time"),
    ],
)
def test_malformed_shd_file_is_one_line_naming_it(tmp_path: Path, problem, message) -> None:
    path = _broken(tmp_path, problem)
    with pytest.raises(ValueError, match=message) as info:
        SpikingAudioDataModule(root=str(tmp_path)).setup()
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_gzipped_shd_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"file shd_train\.h5 not found: looked in .*data\.root="):
        SpikingAudioDataModule(root=str(tmp_path)).setup()
    (tmp_path / "shd_train.h5.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"still gzipped .*gunzip"):
        SpikingAudioDataModule(root=str(tmp_path)).setup()


def test_missing_h5py_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    write_shd(tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    with pytest.raises(ValueError, match="needs h5py: pip install 'spikeexp\\[neuromorphic\\]'"):
        SpikingAudioDataModule(root=str(tmp_path)).setup()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "tidigits"}, "data.dataset must be one of shd, ssc"),
        ({"bin_width": 0}, "data.bin_width must be a positive number of seconds"),
        ({"duration": -1.0}, "data.duration must be a positive number of seconds"),
        ({"bin_width": 2.0, "duration": 1.0}, "data.bin_width must be <= data.duration"),
        ({"binary": 1}, "data.binary must be true or false"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpikingAudioDataModule(**kwargs)


# ---------------------------------------------------------------- N-MNIST


def test_nmnist_decoding_and_binning_by_hand(tmp_path: Path) -> None:
    events = [
        (0, 0, 1, 0),  # ON at (0, 0), bin 0
        (33, 2, 0, 999),  # OFF at x=33, y=2, bin 0
        (33, 2, 0, 1000),  # bin 1
        (5, 6, 1, 2999),  # bin 2
        (5, 6, 1, 0x7FFFFF),  # the largest 23-bit time (8.39 s): past the window
    ]
    for folder in ("Train", "Test"):
        for digit in range(10):
            path = tmp_path / folder / str(digit) / "00001.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(event_bytes(*event) for event in events))
    data = NMNISTDataModule(root=str(tmp_path), bin_width=1e-3, duration=3e-3, val_fraction=0.2)
    data.setup()
    assert data.input_shape == (3, 2, 34, 34)
    frames, label = data.test_set[4]
    expected = torch.zeros(3, 2, 34, 34)
    expected[0, 1, 0, 0] = 1  # [bin, polarity, y, x]
    expected[0, 0, 2, 33] = 1
    expected[1, 0, 2, 33] = 1
    expected[2, 1, 6, 5] = 1
    assert torch.equal(frames, expected) and int(label) == 4
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (8, 2, 10)


def test_nmnist_batches(tmp_path: Path) -> None:
    write_nmnist(tmp_path / "NMNIST")
    data = NMNISTDataModule(root=str(tmp_path), bin_width=5e-3, duration=0.04, batch_size=6)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (6, 8, 2, 34, 34) and y.dtype == torch.int64
    assert x.sum() > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00" * 7, "7 bytes is not a multiple of 5"),
        (event_bytes(34, 0, 0, 5), "x address 34 outside the 34x34 sensor"),
        (event_bytes(0, 40, 0, 5), "y address 40 outside the 34x34 sensor"),
    ],
)
def test_malformed_nmnist_file(tmp_path: Path, content: bytes, message: str) -> None:
    write_nmnist(tmp_path, per_digit=1)
    bad = tmp_path / "Test" / "3" / "00000.bin"
    bad.write_bytes(content)
    data = NMNISTDataModule(root=str(tmp_path))
    data.setup()
    position = next(i for i, path in enumerate(data.files["test"]) if path == bad)
    with pytest.raises(ValueError, match=message) as info:
        data.test_set[position]
    assert f"N-MNIST file {bad}" in str(info.value)


def test_missing_nmnist_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="N-MNIST folders Train and Test not found: looked in"):
        NMNISTDataModule(root=str(tmp_path)).setup()
    (tmp_path / "Train").mkdir()
    (tmp_path / "Test").mkdir()
    with pytest.raises(ValueError, match=r"Train holds no <digit>/<id>\.bin files"):
        NMNISTDataModule(root=str(tmp_path)).setup()


# ---------------------------------------------------------------- experiments

SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "logger=none",
    "callbacks=minimal",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


@pytest.mark.parametrize(
    ("experiment", "writer", "overrides"),
    [
        ("shd_lsnn", write_shd, ["data.duration=0.06", "topology.hidden=[16]"]),
        ("nmnist_conv", write_nmnist, ["data.duration=0.04", "topology.hidden=[16]"]),
    ],
)
def test_experiments_train_a_few_steps(tmp_path: Path, experiment, writer, overrides) -> None:
    writer(tmp_path / "data")
    config = compose_like_cli(
        [
            f"experiment={experiment}",
            f"paths.output_dir={tmp_path}",
            f"data.root={tmp_path / 'data'}",
            "data.batch_size=4",
            *overrides,
            *SHORT,
        ]
    )
    try:
        run = build_experiment(config)
        before = [p.detach().clone() for p in run.module.parameters()]
        trainer = build_trainer(run.spec)
        trainer.fit(run.module, datamodule=run.datamodule)
        results = trainer.test(run.module, datamodule=run.datamodule, verbose=False)[0]
    finally:
        HydraConfig.instance().cfg = None
    after = list(run.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert 0.0 <= results["test/acc"] <= 1.0
