"""The NAS-Bench-201 datasets: no arrays, a column group of the benchmark table each
(answered by the ``tabular`` evaluator), with the input shape and classes of the data the
table was made on (for exports)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from nas.datasets.base import DatasetEntry


class Nb201DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: spec name -> NAS-Bench-201 table column prefix
NB201_DATASETS = {"nb201-cifar10": "c10", "nb201-cifar100": "c100", "nb201-imagenet16-120": "in16"}
#: spec name -> input shape and classes: CIFAR-10/100 images are 32x32, ImageNet16-120 16x16.
_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "nb201-cifar10": ((3, 32, 32), 10),
    "nb201-cifar100": ((3, 32, 32), 100),
    "nb201-imagenet16-120": ((3, 16, 16), 120),
}

ENTRIES = {
    name: DatasetEntry(
        Nb201DatasetConfig,
        None,
        tabular=prefix,
        input_shape=_SHAPES[name][0],
        num_classes=_SHAPES[name][1],
        inputs="images as NAS-Bench-201 trains on them (RGB, normalised per channel by the "
        "dataset's mean and std); this service reads NAS-Bench-201's table and holds no images",
    )
    for name, prefix in NB201_DATASETS.items()
}
