"""Test-session defaults, shared by the unit tests and the notebooks that nbval runs.

Set before any kernel starts, so nbval's notebook kernels inherit them: the fast profile, a non-interactive
matplotlib backend, and the CIFAR-10 copy beside the checkout when there is one (CI machines have it at
../shared/data/cifar10-jpg). Anything already set in the environment wins.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SHARED_COPY = ROOT.parent / "shared" / "data" / "cifar10-jpg"

os.environ.setdefault("GAPCOURSE_PROFILE", "fast")
os.environ.setdefault("MPLBACKEND", "Agg")
if SHARED_COPY.is_dir():
    os.environ.setdefault("GAPCOURSE_DATA", str(SHARED_COPY))
