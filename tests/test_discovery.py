"""Plug-in discovery: a module dropped into a package registers itself, with no edit elsewhere."""

import sys

import pytest

from stpatch.discovery import import_submodules


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    pkg = tmp_path / "my_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "my_model.py").write_text(
        "from torch import nn\n"
        "from stpatch.models.registry import register_model\n"
        "@register_model('zz_test_plugin_model', kind='sensor')\n"
        "class Plugin(nn.Module):\n"
        "    '''A plug-in model.'''\n"
        "    def __init__(self, in_channels=1, t_in=1, t_out=1, num_nodes=1):\n"
        "        super().__init__()\n"
    )
    (pkg / "_private.py").write_text("raise RuntimeError('private modules are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_plugins"
    from stpatch.models import registry

    registry._REGISTRY.pop("zz_test_plugin_model", None)
    for name in [m for m in sys.modules if m.startswith("my_plugins")]:
        del sys.modules[name]


def test_every_public_module_is_imported_and_registers(plugin_package):
    import stpatch

    found = import_submodules(plugin_package)
    assert list(found) == ["my_plugins.my_model"]  # _private skipped
    assert "zz_test_plugin_model" in stpatch.list_models()


def test_the_registries_discover_their_packages():

    for package in ("stpatch.models", "stpatch.metrics", "stpatch.data.adapters", "stpatch.data.sets"):
        assert all(name in sys.modules for name in import_submodules(package)), package
