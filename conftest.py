"""Test-session defaults, shared by the unit tests and the notebooks that nbval runs.

Set before any kernel starts, so nbval's notebook kernels inherit them: the fast profile, a non-interactive
matplotlib backend, the CIFAR-10 copy beside the checkout when there is one (CI machines have it at
../shared/data/cifar10-jpg), and a fresh cache folder for this test session, so notebooks train rather than load
a checkpoint left by an earlier run. Anything already set in the environment wins.
"""

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SHARED_COPY = ROOT.parent / "shared" / "data" / "cifar10-jpg"

os.environ.setdefault("GAPCOURSE_PROFILE", "fast")
os.environ.setdefault("MPLBACKEND", "Agg")
_SESSION_CACHE = None
if "GAPCOURSE_CACHE" not in os.environ:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="gapcourse-test-cache-")
    os.environ["GAPCOURSE_CACHE"] = _SESSION_CACHE
if SHARED_COPY.is_dir():
    os.environ.setdefault("GAPCOURSE_DATA", str(SHARED_COPY))


def pytest_sessionfinish(session, exitstatus):
    if _SESSION_CACHE:  # decoded data and checkpoints of this test session: about 190 MB
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)
