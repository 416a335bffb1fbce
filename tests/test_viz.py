"""gapcourse.viz: plots refuse data of the wrong shape with what they expected."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from gapcourse import viz


matplotlib.use("Agg")


def test_plots_say_what_shape_they_expected():
    with pytest.raises(ValueError, match=r"N×3×H×W.*unsqueeze"):
        viz.show_images(torch.zeros(3, 32, 32, dtype=torch.uint8), [0])
    with pytest.raises(ValueError, match="C×H×W"):
        viz.show_feature_maps(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="K×K"):
        viz.plot_confusion(torch.zeros(10))
