"""Datasets, registered by the name a job spec uses (``dataset: {name: ...}``).

One module per dataset (its config, its loader, its ``ENTRIES``), registered below. Nothing
is downloaded: MNIST-1D is generated locally by the ``mnist1d`` package and cached,
``digits`` ships with scikit-learn, ``npz`` is the user's own file. The NAS-Bench-201
datasets (``nb201-cifar10`` ...) have no arrays: they name a column group of the benchmark
table; ``table`` is the user's own benchmark table (its file is the ``table`` space's).
``sinusoid`` is a task distribution for few-shot meta-learning (``nas.datasets.tasks``): no
arrays either, tasks drawn by the meta-learning evaluators; so are ``episodes`` (N-way K-shot
classification over ``mnist1d``, ``digits`` or an ``npz`` file, with disjoint class splits)
and ``glyphs`` (a generated Omniglot-like benchmark of 200 characters).
"""

from __future__ import annotations

from nas.datasets import digits, episodes, glyphs, mnist1d, nb201, npz, sinusoid, table
from nas.datasets.base import (
    DATASETS,
    FILE_PARAM,
    DatasetConfig,
    DatasetEntry,
    DatasetSplits,
    cache_dir,
    check_dataset,
    dataset_shape,
    is_file_param,
    load_dataset,
    load_tasks,
)
from nas.datasets.nb201 import NB201_DATASETS

for _module in (mnist1d, digits, npz, nb201, table, sinusoid, episodes, glyphs):
    for _name, _entry in _module.ENTRIES.items():
        DATASETS.register(_name)(_entry)
del _module, _name, _entry

__all__ = [
    "DATASETS",
    "FILE_PARAM",
    "NB201_DATASETS",
    "DatasetConfig",
    "DatasetEntry",
    "DatasetSplits",
    "cache_dir",
    "check_dataset",
    "dataset_shape",
    "is_file_param",
    "load_dataset",
    "load_tasks",
]
