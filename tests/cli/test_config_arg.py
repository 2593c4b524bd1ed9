"""cli.inputs.config_arg(needs=...): a tool's required section missing or null is one UserError naming it."""

import pytest

from detkit.cli.errors import UserError
from detkit.cli.inputs import config_arg


@pytest.mark.parametrize("section", ["model", "data"])
def test_a_null_section_a_tool_needs_is_named(section):
    with pytest.raises(UserError, match=f"the config's '{section}' section is null .* this tool needs it"):
        config_arg("yolo_n_shapes", [f"{section}=null"], needs=("model", "data"))
    assert config_arg("yolo_n_shapes", [f"{section}=null"])[section] is None  # tools that do not need it
