"""The Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC), Cramer et al. 2020.

Spoken words converted to spikes of 700 channels by a cochlea model. The published files are
HDF5 with this layout (one entry per recording):

* ``spikes/times``: variable-length float arrays, spike times in seconds;
* ``spikes/units``: variable-length integer arrays of the same lengths, channel ids 0..699;
* ``labels``: one integer class per recording (SHD: 20 classes, SSC: 35);
* ``extra/...`` (speaker, keys, meta data): not used.

Files, looked for in ``<root>`` and then ``<root>/SHD`` or ``<root>/SSC`` (``root`` =
``data.root``, else ``$SPIKEEXP_DATA``, else ``./data``): SHD ``shd_train.h5`` and
``shd_test.h5`` (validation: a seeded ``val_fraction`` of the training set); SSC ``ssc_train.h5``,
``ssc_valid.h5`` and ``ssc_test.h5``. The files are published gzipped: decompress them
(``gunzip *.h5.gz``) first. Reading needs ``h5py`` (``pip install 'spikeexp[neuromorphic]'``).

Each recording is binned on the fly (:mod:`spikeexp.tasks.events`) into
``[T, 700]`` spike counts with ``T = ceil(duration / bin_width)``; events at or after
``duration`` are dropped (SHD recordings last up to about 1.4 s, most under 1 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from spikeexp.tasks.events import EventDataModule
from spikeexp.tasks.mnist import check_root_readable, default_root

CHANNELS = 700
LAYOUT = "spikes/times, spikes/units and labels"
DATASETS: dict[str, dict[str, Any]] = {
    "shd": {
        "title": "SHD",
        "classes": 20,
        "files": {"train": "shd_train.h5", "test": "shd_test.h5"},
    },
    "ssc": {
        "title": "SSC",
        "classes": 35,
        "files": {"train": "ssc_train.h5", "val": "ssc_valid.h5", "test": "ssc_test.h5"},
    },
}


def import_h5py() -> Any:
    """``h5py``, or a one-line ``ValueError`` saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise ValueError(
            "reading SHD/SSC files needs h5py: pip install 'spikeexp[neuromorphic]' (or h5py)"
        ) from None
    return h5py


def read_spike_file(path: Path, classes: int) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
    """``(times, units, labels)`` of a file in the published layout, checked; every problem is
    one ``ValueError`` naming the file and what is wrong."""
    h5py = import_h5py()
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path} is not a readable HDF5 file ({error})") from None
    with handle:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in handle:
                raise ValueError(
                    f"{path} has no dataset '{key}' (the published layout has {LAYOUT})"
                )
        times = [np.asarray(t) for t in handle["spikes/times"][()]]
        units = [np.asarray(u) for u in handle["spikes/units"][()]]
        labels = np.asarray(handle["labels"][()])
    _check_contents(path, times, units, labels, classes)
    return times, units, labels.astype(np.int64)


def _check_contents(
    path: Path, times: list[np.ndarray], units: list[np.ndarray], labels: np.ndarray, classes: int
) -> None:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: labels must be a 1-D integer array (got {labels.dtype} {labels.shape})"
        )
    if not len(times) == len(units) == len(labels):
        raise ValueError(
            f"{path}: spikes/times, spikes/units and labels must have one entry per recording "
            f"(got {len(times)}, {len(units)} and {len(labels)})"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{path}: label {int(bad)} out of range (valid: 0..{classes - 1})")
    for index, (sample_times, sample_units) in enumerate(zip(times, units, strict=True)):
        if sample_times.shape != sample_units.shape or sample_times.ndim != 1:
            raise ValueError(
                f"{path}: recording {index} has {sample_times.size} spike times but "
                f"{sample_units.size} units (must be equal)"
            )
        if sample_units.size and not np.issubdtype(sample_units.dtype, np.integer):
            raise ValueError(
                f"{path}: spikes/units of recording {index} must be integers "
                f"(got {sample_units.dtype})"
            )
        if sample_units.size and (sample_units.min() < 0 or sample_units.max() >= CHANNELS):
            raise ValueError(
                f"{path}: recording {index} has unit {int(sample_units.max())} out of range "
                f"(valid: 0..{CHANNELS - 1})"
            )
        if sample_times.size and not np.issubdtype(sample_times.dtype, np.floating):
            raise ValueError(
                f"{path}: spikes/times of recording {index} must be floats in seconds "
                f"(got {sample_times.dtype})"
            )
        if sample_times.size and not (np.isfinite(sample_times).all() and sample_times.min() >= 0):
            raise ValueError(
                f"{path}: recording {index} has a negative or non-finite spike time "
                "(times are seconds from the start of the recording)"
            )


class SpikingAudioDataModule(EventDataModule):
    """SHD or SSC (``dataset``) binned to ``[T, 700]`` spike counts per sample.

    The other keyword arguments are those of :class:`~spikeexp.tasks.events.EventDataModule`
    (``val_fraction`` only matters for SHD, which has no validation file).

    Args:
        dataset: ``shd`` or ``ssc``.
        root: folder with the HDF5 files (module docstring); ``None``: ``$SPIKEEXP_DATA`` or
            ``./data``.
    """

    sample_shape: ClassVar[tuple[int, ...]] = (CHANNELS,)
    time_unit = 1.0

    def __init__(
        self, *args: Any, dataset: str = "shd", root: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if dataset not in DATASETS:
            raise ValueError(f"data.dataset must be one of {', '.join(DATASETS)} (got {dataset!r})")
        self.dataset = dataset
        self.spec = DATASETS[dataset]
        self.root = Path(root).expanduser() if root else default_root()
        self.recordings: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return int(self.spec["classes"])

    def find(self, name: str) -> Path:
        """The file ``name`` in ``root`` or ``root/<SHD|SSC>``; one-line error if absent."""
        check_root_readable(self.root)
        folders = [self.root, self.root / self.spec["title"]]
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
        for folder in folders:
            if (folder / f"{name}.gz").is_file():
                raise ValueError(
                    f"{folder / name} is still gzipped ({name}.gz): decompress it first "
                    f"(gunzip {folder / name}.gz)"
                )
        places = ", ".join(str(folder) for folder in folders)
        raise ValueError(
            f"{self.spec['title']} file {name} not found: looked in {places}; provide it with "
            "data.root=<folder holding the files> (or set $SPIKEEXP_DATA)"
        )

    def read(self) -> dict[str, np.ndarray]:
        labels = {}
        for split, name in self.spec["files"].items():
            times, units, split_labels = read_spike_file(self.find(name), self.num_classes)
            self.recordings[split] = (times, units)
            labels[split] = split_labels
        return labels

    def events(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        times, units = self.recordings[split]
        return times[index], units[index]
