"""gapcourse.recipes: a recipe refuses nonsense, naming the field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gapcourse.recipes import PRESETS


def test_recipes_refuse_nonsense_with_the_field_named():
    with pytest.raises(ValueError, match="epochs=0"):
        replace(PRESETS["cpu"], epochs=0)
    with pytest.raises(ValueError, match="tta='mirror'"):
        replace(PRESETS["cpu"], tta="mirror")
    with pytest.raises(ValueError, match="precision='fp8'"):
        replace(PRESETS["cpu"], precision="fp8")
