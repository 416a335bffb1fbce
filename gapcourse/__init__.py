"""gapcourse: the helper package of a notebook-driven PyTorch course on Global Average Pooling.

The notebooks keep the teaching code; this package keeps the plumbing: data (:mod:`gapcourse.data`), batches
(:mod:`gapcourse.pipeline`), the network and its heads (:mod:`gapcourse.models`), recipes (:mod:`gapcourse.recipes`),
training (:mod:`gapcourse.train`) and training to a time budget (:mod:`gapcourse.budget`),
checkpoints (:mod:`gapcourse.checkpoints`), plots (:mod:`gapcourse.viz`) and profiles (:mod:`gapcourse.config`).
"""

from .config import headline, profile
from .data import CLASSES, Cifar10Split, DataError, load_cifar10
from .device import pick_device, seed_everything
from .models import HEADS, build_net, count_parameters

__version__ = "0.1.0"

__all__ = [
    "CLASSES", "Cifar10Split", "DataError", "HEADS", "__version__", "build_net", "count_parameters",
    "headline", "load_cifar10", "pick_device", "profile", "seed_everything",
]
