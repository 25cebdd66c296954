"""N-MNIST (Orchard et al. 2015): MNIST digits recorded by an event camera (ATIS) on a moving
platform, 34x34 pixels, two polarities, about 300 ms per sample.

Published layout: ``<root>/Train/<digit>/<id>.bin`` (60,000 files) and ``<root>/Test/<digit>/
<id>.bin`` (10,000), ``<digit>`` = 0..9. Each file is a sequence of 40-bit (5-byte) events,
big-endian bit order:

=========  ====================================================================
bits       field
=========  ====================================================================
39-32      x address (pixel column, 0..33)
31-24      y address (pixel row, 0..33)
23         polarity (1: brighter, ON; 0: darker, OFF)
22-0       timestamp, microseconds from the start of the recording
=========  ====================================================================

``root`` = ``data.root``, else ``$SPIKEEXP_DATA``, else ``./data``; the ``Train`` and ``Test``
folders are looked for in ``<root>`` and ``<root>/NMNIST``. Each recording is read when the loader
asks for it and binned (:mod:`spikeexp.tasks.events`) into frames ``[T, 2, 34, 34]``: channel 0
counts OFF events, channel 1 ON events, ``T = ceil(duration / bin_width)``. A file whose size is
not a multiple of 5 bytes or with an address outside the sensor is one ``ValueError`` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from spikeexp.tasks.events import EventDataModule
from spikeexp.tasks.mnist import check_root_readable, default_root

SENSOR = 34
EVENT_BYTES = 5
SPLITS = {"train": "Train", "test": "Test"}
MICROSECOND = 1e-6


def decode_events(data: bytes, path: Path) -> dict[str, np.ndarray]:
    """The events of an N-MNIST file's bytes: ``x``, ``y``, ``p`` (0/1) and ``t`` (µs)."""
    if len(data) % EVENT_BYTES:
        raise ValueError(
            f"N-MNIST file {path} is truncated or not an event file: {len(data)} bytes is not a "
            f"multiple of {EVENT_BYTES} (one 40-bit event)"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, EVENT_BYTES).astype(np.int64)
    events = {
        "x": raw[:, 0],
        "y": raw[:, 1],
        "p": raw[:, 2] >> 7,
        "t": ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4],
    }
    for axis in ("x", "y"):
        if events[axis].size and events[axis].max() >= SENSOR:
            raise ValueError(
                f"N-MNIST file {path} has {axis} address {int(events[axis].max())} outside the "
                f"{SENSOR}x{SENSOR} sensor (valid: 0..{SENSOR - 1})"
            )
    return events


def read_events(path: Path) -> dict[str, np.ndarray]:
    """Read and decode one N-MNIST file (:func:`decode_events`)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read N-MNIST file {path}: {error.strerror or error}") from None
    return decode_events(data, path)


class NMNISTDataModule(EventDataModule):
    """N-MNIST binned to frames ``[T, 2, 34, 34]`` (module docstring).

    The other keyword arguments are those of :class:`~spikeexp.tasks.events.EventDataModule`.

    Args:
        root: folder holding ``Train`` and ``Test`` (or ``NMNIST/Train`` ...); ``None``:
            ``$SPIKEEXP_DATA`` or ``./data``.
    """

    sample_shape: ClassVar[tuple[int, ...]] = (2, SENSOR, SENSOR)
    num_classes = 10
    time_unit = MICROSECOND

    def __init__(self, *args: Any, root: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.root = Path(root).expanduser() if root else default_root()
        self.files: dict[str, list[Path]] = {}

    def find_base(self) -> Path:
        """The folder holding ``Train`` and ``Test``; one-line error if there is none."""
        check_root_readable(self.root)
        candidates = [self.root, self.root / "NMNIST"]
        for base in candidates:
            if all((base / folder).is_dir() for folder in SPLITS.values()):
                return base
        places = ", ".join(str(base) for base in candidates)
        raise ValueError(
            f"N-MNIST folders Train and Test not found: looked in {places}; provide them with "
            "data.root=<folder holding Train/ and Test/> (or set $SPIKEEXP_DATA)"
        )

    def read(self) -> dict[str, np.ndarray]:
        base = self.find_base()
        labels = {}
        for split, folder in SPLITS.items():
            files, split_labels = [], []
            for digit in range(self.num_classes):
                found = sorted((base / folder / str(digit)).glob("*.bin"))
                files += found
                split_labels += [digit] * len(found)
            if not files:
                raise ValueError(
                    f"N-MNIST folder {base / folder} holds no <digit>/<id>.bin files "
                    "(expected sub-folders 0..9 of .bin event files)"
                )
            self.files[split] = files
            labels[split] = np.asarray(split_labels, dtype=np.int64)
        return labels

    def events(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        events = read_events(self.files[split][index])
        channels = (events["p"] * SENSOR + events["y"]) * SENSOR + events["x"]
        return events["t"], channels
