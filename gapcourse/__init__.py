"""gapcourse: the helper package of a notebook-driven PyTorch course on Global Average Pooling.

The notebooks keep the teaching code; the package keeps the plumbing, in three layers the folders show:

* **the learner's helpers**, at the top of this folder, each introduced by a notebook: data (:mod:`gapcourse.data`),
  batches (:mod:`gapcourse.pipeline`), the network and its heads (:mod:`gapcourse.models`), recipes
  (:mod:`gapcourse.recipes`), training (:mod:`gapcourse.train`; to a time budget: :mod:`gapcourse.budget`), moved and resized images (:mod:`gapcourse.canvas`), plots
  (:mod:`gapcourse.viz`), noise (:mod:`gapcourse.stats`), the course's committed numbers (:mod:`gapcourse.measured`)
  and its shipped networks (:mod:`gapcourse.weights`); the exercise checks are in :mod:`gapcourse.checks`;
* **the studies** behind the committed numbers (docs/RESULTS.md): :mod:`gapcourse.studies`;
* **the instructor's tools** (student copies, grading, the Colab install cell): :mod:`gapcourse.classroom`.

No learner module imports a study or a classroom tool (tests/test_layers.py reads the source to check it).
"""

from .config import headline, profile
from .data import CLASSES, Cifar10Split, DataError, load_cifar10
from .device import pick_device, seed_everything
from .models import HEADS, build_net, count_parameters
from .moved import install as _install_moved_module_names

_install_moved_module_names()  # `import gapcourse.runlog` and the like say where the module went (gapcourse.moved)

__version__ = "0.1.0"

__all__ = [
    "CLASSES", "Cifar10Split", "DataError", "HEADS", "__version__", "build_net", "count_parameters",
    "headline", "load_cifar10", "pick_device", "profile", "seed_everything",
]
