"""The top-level API a user imports: `import stpatch` is light, and each name loads its room on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stpatch

LAZY = {  # name -> (module, attribute) the name must be, as the README and ARCHITECTURE.md promise
    "train": ("stpatch.engine.training", "train"),
    "evaluate": ("stpatch.engine.evaluation", "evaluate"),
    "predict": ("stpatch.engine.prediction", "predict"),
    "load_run": ("stpatch.engine.runs", "load_run"),
    "create_model": ("stpatch.models", "create_model"),
    "list_models": ("stpatch.models", "list_models"),
    "datasets": ("stpatch.datasets", None),
    "metrics": ("stpatch.metrics", None),
}


def test_import_stpatch_loads_the_engine_and_data_only_on_first_use():
    """In a fresh interpreter: importing stpatch loads neither Lightning nor the data stack; the first
    use of ``stpatch.train`` loads the training room and nothing it does not need."""
    code = """
import sys
import stpatch
heavy = ("lightning", "pandas", "xarray", "stpatch.engine", "stpatch.data", "stpatch.models")
print(sorted(m for m in heavy if m in sys.modules))
stpatch.train
print(sorted(m for m in heavy if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = proc.stdout.strip().splitlines()[-2:]
    assert before == "[]"
    assert "'lightning'" in after and "'stpatch.engine'" in after


@pytest.mark.parametrize("name", sorted(LAZY))
def test_each_lazy_name_is_the_documented_object(name):
    import importlib

    module_name, attribute = LAZY[name]
    module = importlib.import_module(module_name)
    assert getattr(stpatch, name) is (module if attribute is None else getattr(module, attribute))
    assert name in stpatch.__all__


def test_datasets_is_the_data_package_under_its_public_name():
    import stpatch.data

    assert stpatch.datasets.load is stpatch.data.load and stpatch.datasets.from_numpy is stpatch.data.from_numpy
    assert {"digits", "era5_uk_t2m", "los_loop"} <= set(stpatch.datasets.list_datasets())
    digits = stpatch.datasets.load("digits", train_size=2, val_size=1, test_size=1, image_size=32)
    assert digits.sequence("test", 0).shape == (20, 1, 32, 32)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'stpatch' has no attribute 'trian'"):
        stpatch.trian  # noqa: B018
    assert not hasattr(stpatch, "trian")
