"""docs/configuration.md holds the reference table `spice config --markdown` prints."""
from pathlib import Path

import pytest

from spice.config_doc import markdown

pytestmark = pytest.mark.unit


def test_the_configuration_reference_is_current():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert markdown() in doc, "regenerate: spice config --markdown"


def test_the_readme_names_every_setting():
    from spice.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert [n.upper() for n in Settings.model_fields if n.upper() not in readme] == []
