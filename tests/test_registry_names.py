"""Names agree across registries: every data set's metrics and baselines exist where they are looked up."""

import pytest

import stpatch
from stpatch.data.core import FIELD_BASELINES, FIELD_METRICS
from stpatch.datasets import info, list_datasets
from stpatch.metrics import METRIC_SUITES, is_metric


@pytest.mark.parametrize("name", list_datasets())
def test_dataset_metrics_and_baselines_are_registry_names(name):
    entry = info(name)
    assert entry.metrics, f"{name} names no metrics"
    unknown = [m for m in entry.metrics if not is_metric(m)]
    assert not unknown, f"{name}: metrics {unknown} are not in the metric registry"
    models = set(stpatch.list_models())
    assert entry.baselines, f"{name} names no baselines"
    missing = [b for b in entry.baselines if b not in models]
    assert not missing, f"{name}: baselines {missing} are not in the model registry"


def test_field_defaults_are_registry_names():
    models = set(stpatch.list_models())
    for field, metrics in FIELD_METRICS.items():
        assert all(is_metric(m) for m in metrics), (field, metrics)
    for field, baselines in FIELD_BASELINES.items():
        assert set(baselines) <= models, (field, baselines)
    for suite, metrics in METRIC_SUITES.items():
        assert all(is_metric(m) for m in metrics), (suite, metrics)


def test_a_wrong_name_is_caught():
    # the check above could only pass vacuously if is_metric accepted anything
    assert not is_metric("csi@1mm/h") and not is_metric("acc") and is_metric("csi@1.0")
