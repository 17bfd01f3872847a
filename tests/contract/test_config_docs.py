"""docs/configuration.md is generated from the settings classes and must not drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_config_docs", REPO / "scripts" / "gen_config_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (REPO / "docs" / "configuration.md").read_text() == module.render(), (
        "docs/configuration.md is stale: run scripts/gen_config_docs.py"
    )
