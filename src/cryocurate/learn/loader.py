"""A PyTorch ``Dataset`` over an export written by ``cryocurate export``.

Why here and not left to each user: the export's conventions (which column is the label,
where an image lives, which rows have no label) are easy to get subtly wrong, and a loader
that gets them wrong trains on the wrong thing without any error. This is the only module of
cryocurate that imports torch; nothing else imports it, so exporting does not need torch.
Torch is the ``train`` extra (``pip install 'cryocurate[train]'``); without it, importing
this module says so instead of a bare ``No module named 'torch'``.

Images are read through ``mrcfile.mmap``: a stack is opened once per process (and per
DataLoader worker: open files are dropped when the dataset is pickled) and only the pages of
the images asked for are read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pyarrow.parquet as pq

from cryocurate.errors import InputError, MissingFileError
from cryocurate.store import names

TRAIN_EXTRA = "pip install 'cryocurate[train]'"

try:
    import torch
    from torch.utils.data import Dataset
except ModuleNotFoundError as err:  # the README's install has no torch: say which extra
    if err.name is None or err.name.split(".")[0] != "torch":
        raise
    raise ModuleNotFoundError(
        f"cryocurate.learn.loader needs PyTorch, which is not installed: {TRAIN_EXTRA} "
        "(or pip install -e '.[train]' in a clone of cryocurate)",
        name=err.name,
    ) from err

__all__ = ["DEFAULT_FEATURES", "TARGETS", "ClassAverageDataset"]

DEFAULT_FEATURES: tuple[str, ...] = (
    "resolution_a",
    "particle_count",
    "class_fraction",
    "mean_posterior",
    "mean_ess",
    "accuracy_rotations",
    "accuracy_translations_a",
    "pixel_size_a",
    "box_size",
    "mass_estimate",
    "dmean_mass",
    "dmedian_mass",
    "dmode_mass",
)
"""The metadata columns returned as the features tensor, in this order (missing → 0.0)."""

TARGETS: dict[str, str] = {
    "final": "the final label's value (settled, else the model's grade), int64 scalar",
    "final_index": "the final label as a 0-based level index (for cross-entropy), int64 scalar",
    "model": "the Dawid–Skene grade's value, int64 scalar",
    "median": "the median grade value, float32 scalar",
    "mean": "the mean grade value, float32 scalar",
    "posterior": "the model's posterior over the levels (a soft label), float32 vector",
}
"""What ``target=`` may ask for; rows where the target is missing are left out by default."""

_SPLITS = ("train", "validation", "test")


class ClassAverageDataset(Dataset):
    """The class averages of one split of an export: ``(image, target, features)``.

    ``image`` is a float32 tensor of shape (1, H, W), after ``transform`` if given;
    ``target`` as chosen by ``target`` (see :data:`TARGETS`); ``features`` a float32 vector
    of the ``features`` columns (:data:`DEFAULT_FEATURES`), a missing value as 0.0. All three
    are tensors, so torch's default ``collate`` stacks a batch. ``split`` is ``train``,
    ``validation``, ``test`` or ``None`` (all). Items without the target (nobody graded them)
    are left out unless ``include_unlabelled``, in which case their target is NaN (a float
    target) or −1 (an integer one). ``rows`` holds each returned item's table row (ids,
    metadata, consensus) in dataset order.
    """

    def __init__(
        self,
        export_dir: str | Path,
        split: str | None = "train",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        target: str = "final",
        *,
        features: Sequence[str] = DEFAULT_FEATURES,
        include_unlabelled: bool = False,
    ) -> None:
        self.root = Path(export_dir)
        table_path = self.root / "class_averages.parquet"
        if not table_path.is_file():
            raise MissingFileError(
                "not an export: no class_averages.parquet",
                where=self.root,
                hint="make one with `cryocurate export`",
            )
        if split is not None and split not in _SPLITS:
            raise InputError(f"unknown split {split!r}", hint="use train, validation or test")
        if target not in TARGETS:
            raise InputError(f"unknown target {target!r}", hint=f"use one of {', '.join(TARGETS)}")
        table = pq.read_table(table_path)
        columns = set(table.column_names)
        missing = [name for name in features if name not in columns]
        if missing:
            raise InputError(f"no feature columns {missing} in the export")
        self.levels = sorted(int(name[2:]) for name in columns if name.startswith("p_"))
        self.split = split
        self.target = target
        self.transform = transform
        self.features = tuple(features)
        rows = [row for row in table.to_pylist() if split is None or row["split"] == split]
        if not include_unlabelled:
            rows = [row for row in rows if self._has_target(row)]
        self.rows: list[dict[str, Any]] = rows
        self._stacks: dict[str, Any] = {}

    # -- rows ---------------------------------------------------------------------------------

    def _has_target(self, row: dict[str, Any]) -> bool:
        if self.target in ("final", "final_index"):
            return row["final_value"] is not None
        if self.target == "model":
            return row["model_grade"] is not None
        if self.target == "posterior":
            return bool(row["n_grades"])
        value = row[self.target]
        return value is not None and not math.isnan(value)

    def _target(self, row: dict[str, Any]) -> torch.Tensor:
        if self.target == "posterior":
            p = [row[f"p_{level}"] for level in self.levels]
            values = [math.nan if x is None else x for x in p]
            return torch.tensor(values, dtype=torch.float32)
        if self.target in ("median", "mean"):
            value = row[self.target]
            return torch.tensor(math.nan if value is None else value, dtype=torch.float32)
        value = row["final_value"] if self.target.startswith("final") else row["model_grade"]
        if value is None:
            return torch.tensor(-1, dtype=torch.int64)
        if self.target == "final_index":
            value = self.levels.index(int(value))
        return torch.tensor(int(value), dtype=torch.int64)

    def _features(self, row: dict[str, Any]) -> torch.Tensor:
        values = [row[name] for name in self.features]
        numbers = [
            0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            for v in values
        ]
        return torch.tensor(numbers, dtype=torch.float32)

    # -- images -------------------------------------------------------------------------------

    def _stack(self, name: str) -> np.ndarray:
        mrc = self._stacks.get(name)
        if mrc is None:
            # image_file comes from the export's table, which may have been handed to us:
            # it must name a file inside the export folder.
            names.check_relpath(name, what="image_file", where=self.root)
            path = names.contained(self.root, name, what="read")
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
            self._stacks[name] = mrc
        data = mrc.data
        return data if data.ndim == 3 else data[np.newaxis]

    def image(self, index: int) -> torch.Tensor:
        """Item ``index``'s image as a float32 tensor (1, H, W), before ``transform``."""
        row = self.rows[index]
        pixels = np.array(self._stack(row["image_file"])[row["image_index"]], dtype=np.float32)
        return torch.from_numpy(pixels).unsqueeze(0)

    # -- Dataset ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        row = self.rows[index]
        image = self.image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self._target(row), self._features(row)

    def close(self) -> None:
        """Close the memory-mapped stacks (they are reopened when needed)."""
        for mrc in self._stacks.values():
            mrc.close()
        self._stacks.clear()

    def __getstate__(self) -> dict[str, Any]:
        # Open memory maps do not pickle; each DataLoader worker opens its own.
        state = self.__dict__.copy()
        state["_stacks"] = {}
        return state

    @staticmethod
    def splits_of(export_dir: str | Path) -> dict[str, Any]:
        """The export's ``splits.json`` (seed, fractions, jobs per split, counts)."""
        return json.loads((Path(export_dir) / "splits.json").read_text(encoding="utf-8"))
