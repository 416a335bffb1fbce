"""CIFAR-10 as whole uint8 tensors: download or local copy, decoded once, cached, validated. Introduced in notebook 01.

Where the images come from, in order:

1. ``source=`` given to :func:`load_cifar10`, else ``$GAPCOURSE_DATA``. Accepted local copies:

   * torchvision's layout: the ``cifar-10-batches-py`` folder, or a folder that contains it (md5-checked);
   * the original tarball ``cifar-10-python.tar.gz``, or a folder that contains it (md5-checked, extracted into the
     cache);
   * an ImageFolder copy: ``<root>/train/<class>/*.jpg|png`` and ``<root>/test/<class>/*``, class folders named as
     in :data:`CLASSES`;
   * the word ``synthetic``: a labelled stand-in of coloured shapes, for when no real data can be had. It says so
     loudly every time it is loaded; nothing else ever falls back to it.

2. Otherwise torchvision's download (170 MB from the Toronto host, md5-checked, with a progress bar) into the cache.
   Offline, this fails within seconds with a message that says how to point at a local copy.

Decoded images are cached as one tensor file per split and source in ``<cache>/data`` (see
:func:`gapcourse.config.cache_dir`); the source folder is only read, never written. A cache file records a SHA-256
of its contents: a corrupt, partial or tampered cache is moved aside (``*.corrupt``) and rebuilt, never trained on.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import socket
import tarfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import replacing
from .config import CACHE_ENV, DATA_ENV, CacheError, Profile, cache_dir, env_text
from .config import profile as active_profile

CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (3, 32, 32)
CACHE_FORMAT = 1

# torchvision's own file list and checksums for the Python version of CIFAR-10 (torchvision.datasets.CIFAR10).
_BATCH_FILES = {
    "train": [
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    ],
    "test": [("test_batch", "40351d587109b95175f43aff81a1287e")],
}
_TARBALL = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
_DOWNLOAD_HOST = "www.cs.toronto.edu"


class DataError(RuntimeError):
    """The data could not be found or is not CIFAR-10 as expected; the message says what to do."""


class SyntheticDataWarning(UserWarning):
    """Raised (as a warning) whenever the synthetic stand-in is loaded."""


@dataclass
class Cifar10Split:
    """One split of CIFAR-10 held as tensors: ``images`` uint8 N×3×32×32, ``labels`` int64 N."""

    images: torch.Tensor
    labels: torch.Tensor
    split: str
    source: str
    classes: tuple[str, ...] = CLASSES
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    sha256: str | None = None  # of images and labels; filled in by fingerprint() when first asked for

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """SHA-256 of the images and labels (the same digest the cache file records). Two splits with the same
        fingerprint hold the same pixels and labels in the same order; checkpoint names include it, so a network
        trained on other data (the synthetic stand-in, another subset) is never loaded by mistake."""
        if self.sha256 is None:
            self.sha256 = data_digest(self.images.cpu(), self.labels.cpu())
        return self.sha256

    def __repr__(self) -> str:
        kind = "SYNTHETIC stand-in" if self.synthetic else "CIFAR-10"
        return (f"Cifar10Split({kind} {self.split}: {len(self)} images {tuple(self.images.shape[1:])} uint8, "
                f"{len(self.classes)} classes, source={self.source})")

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def subset(self, per_class: int) -> Cifar10Split:
        """The first ``per_class`` images of every class, in stored order: deterministic and class-balanced."""
        _check_per_class(per_class, "None gives the whole split")
        counts = self.class_counts()
        if per_class > min(counts):
            raise ValueError(f"Asked for {per_class} images per class, but the smallest class has {min(counts)}.")
        keep = torch.cat([torch.nonzero(self.labels == c).flatten()[:per_class] for c in range(len(self.classes))])
        keep = keep.sort().values
        return Cifar10Split(self.images[keep], self.labels[keep], self.split, self.source, self.classes,
                            self.synthetic, self.notes + [f"subset: first {per_class} per class"])


def _check_per_class(per_class: object, none_gives: str) -> None:
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a whole number of images ≥ 1, got {per_class!r} ({none_gives}).")


# --------------------------------------------------------------------------------------------------------------------
# Public entry point


def load_cifar10(
    split: str = "train",
    *,
    source: str | os.PathLike | None = None,
    profile: Profile | None = None,
    per_class: int | None = None,
    download: bool = True,
) -> Cifar10Split:
    """Load a CIFAR-10 split as uint8 tensors, decoding and caching on first use.

    ``profile`` (default: the active one) picks a class-balanced subset in the fast profile; ``per_class`` overrides
    it (``per_class=None`` with the full profile gives the whole split).
    """
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if per_class is not None:
        _check_per_class(per_class, "None gives the profile's amount: the whole split in the full profile")
    profile = profile or active_profile(announce=False)
    if per_class is None:
        per_class = profile.train_per_class if split == "train" else profile.test_per_class

    where = source if source is not None else env_text(DATA_ENV)  # spaces around the variable's value removed
    if where is not None and str(where).strip().lower() == "synthetic":
        data = synthetic_cifar10(split)
    else:
        data = _load_real(split, where, download=download)
    return data.subset(per_class) if per_class is not None else data


# --------------------------------------------------------------------------------------------------------------------
# Finding the source


def _detect_layout(path: Path) -> tuple[str, Path]:
    """Return (layout, folder-or-file) for a local copy, or raise DataError saying what was expected."""
    if not path.exists():
        relative = "" if path.is_absolute() else (
            f" It is a relative path, read from the current folder {Path.cwd()}, so it means {path.absolute()} (a "
            "notebook runs in notebooks/); an absolute path works from anywhere.")
        raise DataError(f"CIFAR-10 source '{path}' does not exist.{relative} {_HOW_TO_POINT}")
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz")):
            return "tarball", path
        raise DataError(f"{path} is a file but not the CIFAR-10 tarball (cifar-10-python.tar.gz). {_HOW_TO_POINT}")
    if (path / "data_batch_1").exists():
        return "batches", path
    if (path / "cifar-10-batches-py" / "data_batch_1").exists():
        return "batches", path / "cifar-10-batches-py"
    if all((path / split).is_dir() for split in SPLIT_SIZES):
        return "imagefolder", path
    if (path / _TARBALL[0]).exists():
        return "tarball", path / _TARBALL[0]
    raise DataError(
        f"{path} does not look like a CIFAR-10 copy. Expected one of: a 'cifar-10-batches-py' folder (or a folder "
        f"containing it), '{_TARBALL[0]}', or an ImageFolder copy with train/<class>/ and test/<class>/. "
        f"{_HOW_TO_POINT}"
    )


_HOW_TO_POINT = (
    f"Point the course at a local copy with `export {DATA_ENV}=/path/to/cifar10` (or "
    f"load_cifar10(source=...)); `{DATA_ENV}=synthetic` runs on a labelled stand-in that is not CIFAR-10."
)


def _cache_file(split: str, layout: str, where: Path | None) -> Path:
    tag = "download" if where is None else f"{layout}-{hashlib.sha1(str(where.resolve()).encode()).hexdigest()[:10]}"
    folder = cache_dir() / "data"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheError(f"Cannot create the cache folder {folder} ({err.strerror or err}). Point {CACHE_ENV} at a "
                         "writable folder, e.g. `export GAPCOURSE_CACHE=/tmp/gapcourse`.") from None
    return folder / f"cifar10-{split}-{tag}.pt"


def _aside(path: Path) -> Path:
    """A new name beside ``path`` for a file that is moved aside: ``<name>.corrupt-<UTC time>[-n]``, never an
    existing file, so a second corrupt file does not overwrite the first."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    return candidate


def _load_real(split: str, where: str | os.PathLike | None, *, download: bool) -> Cifar10Split:
    if where is None:
        layout, path = "download", None
    else:
        layout, path = _detect_layout(Path(where).expanduser())
    described = "torchvision download" if path is None else f"{layout} at {path}"
    uncached: list[str] = []  # why the decoded split was not cached (prepare-data fails on it)
    try:
        cache = _cache_file(split, layout, path)
    except CacheError as err:
        if layout not in ("imagefolder", "batches"):  # a download or a tarball needs the cache to unpack into
            raise
        print(f"WARNING: {err}\n         Decoding {described} into memory without caching it (slower next time).")
        cache = None
        uncached.append(f"not cached: {err}")

    if cache is not None and cache.exists():
        try:
            return _read_cache(cache, split, described)
        except DataError as err:
            bad = _aside(cache)
            try:
                os.replace(cache, bad)
                print(f"WARNING: {err}\n         Moved it to {bad} and rebuilding from the source ({described}).")
            except OSError as move_err:
                print(f"WARNING: {err}\n         It could not be moved aside ({move_err.strerror}); rebuilding "
                      f"from the source ({described}) without replacing it.")
                cache = None
                uncached.append(f"not cached: a corrupt cache file could not be moved aside ({move_err.strerror})")

    if layout == "download":
        folder = _download(download)
        images, labels = _decode_batches(folder, split)
    elif layout == "tarball":
        images, labels = _decode_batches(_extract_tarball(path), split)
    elif layout == "batches":
        images, labels = _decode_batches(path, split)
    else:
        images, labels = _decode_imagefolder(path, split)

    _validate(images, labels, split, described)
    digest = data_digest(images, labels)
    if cache is not None:
        try:
            _write_cache(cache, images, labels, split, described, digest)
        except OSError as err:  # read-only or full disk: keep the decoded data, say why it is not cached
            print(f"WARNING: could not write the cache file {cache} ({err.strerror or err}). Using the decoded "
                  f"images from memory; they will be decoded again next time. Point {CACHE_ENV} at a writable "
                  "folder to cache them.")
            uncached.append(f"not cached: could not write {cache} ({err.strerror or err})")
    return Cifar10Split(images, labels, split, described, sha256=digest, notes=uncached)


# --------------------------------------------------------------------------------------------------------------------
# Decoding


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MB chunks (md5 for CIFAR-10's published checksums, SHA-256 elsewhere)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _md5(path: Path) -> str:
    return file_digest(path, "md5")


def _decode_batches(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read torchvision's pickled batches after checking each file's md5."""
    images, labels = [], []
    for name, md5 in _BATCH_FILES[split]:
        file = folder / name
        if not file.exists():
            raise DataError(f"{file} is missing: {folder} is not a complete 'cifar-10-batches-py' copy. "
                            f"{_HOW_TO_POINT}")
        if _md5(file) != md5:
            raise DataError(f"{file} fails its md5 check (expected {md5}): the copy is corrupt or not the original "
                            f"CIFAR-10. Download it again or point at another copy. {_HOW_TO_POINT}")
        with open(file, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, *IMAGE_SHAPE))
        labels.append(np.asarray(entry["labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _batches_intact(folder: Path) -> bool:
    """Every batch file of both splits is present with its md5."""
    return all((folder / name).is_file() and _md5(folder / name) == md5
               for files in _BATCH_FILES.values() for name, md5 in files)


def _extract_tarball(tarball: Path) -> Path:
    """Extract the tarball's batches into the cache, unless an intact extraction is already there.

    The extraction goes to a temporary folder that is renamed into place when complete, so an interrupted
    extraction (Ctrl-C, full disk) is never taken for a finished one; a damaged earlier extraction is replaced."""
    if _md5(tarball) != _TARBALL[1]:
        raise DataError(f"{tarball} fails its md5 check (expected {_TARBALL[1]}): a partial or corrupt download. "
                        f"Download it again, or point at another copy. {_HOW_TO_POINT}")
    target = cache_dir() / "downloads" / f"extracted-{hashlib.sha1(str(tarball.resolve()).encode()).hexdigest()[:10]}"
    folder = target / "cifar-10-batches-py"
    if folder.exists() and _batches_intact(folder):
        return folder
    if folder.exists():
        print(f"WARNING: the earlier extraction in {target} is incomplete or damaged; extracting {tarball} again.")
    staging = target.with_name(target.name + f".partial{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(tarball, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("cifar-10-batches-py/") and m.isfile()]
            tar.extractall(staging, members=members)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as err:
        raise CacheError(f"Could not extract {tarball} into {target} ({err.strerror or err}). Point {CACHE_ENV} at "
                         "a writable folder with about 200 MB free.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _decode_files(files: list[str]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, name in enumerate(files):
        try:
            with Image.open(name) as img:
                if img.size != (32, 32):
                    raise DataError(f"{name} is {img.size[0]}x{img.size[1]} pixels; CIFAR-10 images are 32x32. "
                                    "Replace it from another copy of CIFAR-10.")
                out[i] = np.asarray(img.convert("RGB"))
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for bad files
            raise DataError(f"{name} cannot be decoded as an image ({type(err).__name__}: {err}): the file is "
                            "damaged or truncated. Replace it from another copy of CIFAR-10 (or copy the whole "
                            "dataset again); the source folder is never modified by the course.") from None
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # what an ImageFolder copy may hold (other files are named in errors)


def _decode_imagefolder(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``root/split/<class>/*`` in class order, file-name order, using every core."""
    folder = root / split
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if tuple(found) != CLASSES:
        raise DataError(f"{folder} has class folders {found}; expected exactly {list(CLASSES)}.")
    files, labels, others = [], [], []
    for index, name in enumerate(CLASSES):
        names = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += [str(p) for p in names]
        labels += [index] * len(names)
        others += sorted(p for p in (folder / name).iterdir()
                         if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
    expected = SPLIT_SIZES[split]
    if len(files) != expected and others:  # e.g. .webp files: say what they are, not that the copy is partial
        kinds = sorted({p.suffix.lower() or "(no extension)" for p in others})
        raise DataError(f"{folder} holds {len(files)} JPEG/PNG images and {len(others)} file(s) of a type the course "
                        f"does not read ({', '.join(kinds)}; e.g. {others[0]}); CIFAR-10's {split} split has "
                        f"{expected}. Convert them to PNG (lossless) or point at a copy in JPEG/PNG.")
    if len(files) != expected:
        raise DataError(f"{folder} holds {len(files)} images; CIFAR-10's {split} split has {expected}. "
                        "The copy is partial: copy it again or point at another one.")
    chunks = [files[i:i + 2000] for i in range(0, len(files), 2000)]
    workers = max(1, min(8, os.cpu_count() or 1))
    parts = []
    with ProcessPoolExecutor(workers) as pool, tqdm(total=len(files), desc=f"decoding {split} JPEGs",
                                                    unit="img") as bar:
        for part in pool.map(_decode_files, chunks):
            parts.append(part)
            bar.update(len(part))
    images = torch.from_numpy(np.concatenate(parts)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels, dtype=torch.int64)


def _download(allowed: bool) -> Path:
    import torchvision

    root = cache_dir() / "downloads"
    folder = root / "cifar-10-batches-py"
    if (folder / "test_batch").exists():
        return folder
    if not allowed:
        raise DataError(f"CIFAR-10 is not in the cache ({root}) and download=False. {_HOW_TO_POINT}")
    try:
        socket.create_connection((_DOWNLOAD_HOST, 443), timeout=5).close()
    except OSError as err:
        raise DataError(
            f"CIFAR-10 is not cached ({root}) and its host {_DOWNLOAD_HOST} cannot be reached ({err}). "
            f"{_HOW_TO_POINT}"
        ) from None
    print(f"Downloading CIFAR-10 (170 MB, md5-checked) into {root}. The Toronto host has taken 40+ minutes at "
          f"times (pytorch/vision#9536); if you have a copy, stop this and set {DATA_ENV} instead.")
    try:
        torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
    except Exception as err:  # noqa: BLE001 - any failure here has the same remedy
        raise DataError(f"Downloading CIFAR-10 failed ({type(err).__name__}: {err}). {_HOW_TO_POINT}") from err
    return folder


# --------------------------------------------------------------------------------------------------------------------
# Validation and cache


def _validate(images: torch.Tensor, labels: torch.Tensor, split: str, described: str) -> None:
    expected = SPLIT_SIZES[split]
    problems = []
    if images.dtype != torch.uint8 or tuple(images.shape) != (expected, *IMAGE_SHAPE):
        problems.append(f"images are {images.dtype} {tuple(images.shape)}, expected uint8 {(expected, *IMAGE_SHAPE)}")
    if labels.dtype != torch.int64 or tuple(labels.shape) != (expected,):
        problems.append(f"labels are {labels.dtype} {tuple(labels.shape)}, expected int64 ({expected},)")
    elif labels.min() < 0 or labels.max() >= len(CLASSES):
        problems.append(f"labels span {labels.min()}..{labels.max()}, expected 0..{len(CLASSES) - 1}")
    else:
        counts = torch.bincount(labels, minlength=len(CLASSES)).tolist()
        if len(set(counts)) != 1:
            problems.append(f"classes are unbalanced: {counts}, expected {expected // len(CLASSES)} each")
    if problems:
        raise DataError(f"CIFAR-10 {split} from {described} is not as expected: " + "; ".join(problems) + ".")


def data_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of images and labels (CPU tensors): what :meth:`Cifar10Split.fingerprint` and the cache file record,
    and what :mod:`gapcourse.studies.resume` records of a run's data."""
    h = hashlib.sha256()
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def _write_cache(path: Path, images: torch.Tensor, labels: torch.Tensor, split: str, described: str,
                 digest: str) -> None:
    payload = {"format": CACHE_FORMAT, "split": split, "source": described, "images": images, "labels": labels,
               "sha256": digest}
    try:  # an interrupted write never leaves a half-written cache under the real name
        with replacing(path) as tmp, open(tmp, "wb") as fh:  # plain OSError when the folder is read-only
            torch.save(payload, fh)
    except RuntimeError as err:  # torch wraps write failures (e.g. a full disk) in RuntimeError
        raise OSError(f"writing failed: {str(err).splitlines()[0]}") from None


def _read_cache(path: Path, split: str, described: str) -> Cifar10Split:
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - unreadable for whatever reason means corrupt
        raise DataError(f"The cache {path} cannot be read ({type(err).__name__}); it is corrupt or partial.") from None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise DataError(f"The cache {path} is not a gapcourse cache of format {CACHE_FORMAT}.")
    images, labels = payload.get("images"), payload.get("labels")
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise DataError(f"The cache {path} lacks its image or label tensor.")
    _validate(images, labels, split, f"cache {path}")
    digest = data_digest(images, labels)
    if digest != payload.get("sha256"):
        raise DataError(f"The cache {path} does not match its recorded SHA-256: it was changed or damaged.")
    return Cifar10Split(images, labels, split, described, sha256=digest)


def clear_cache() -> list[Path]:
    """Delete the decoded-tensor caches (not downloads). Returns what was removed."""
    folder = cache_dir() / "data"
    removed = sorted(folder.glob("cifar10-*")) if folder.exists() else []
    for path in removed:
        path.unlink()
    return removed


# --------------------------------------------------------------------------------------------------------------------
# Synthetic stand-in (only on request)

_BANNER = "!" * 100


def synthetic_cifar10(split: str = "train", per_class: int | None = None, seed: int = 0) -> Cifar10Split:
    """A labelled stand-in, NOT CIFAR-10: each class is a coloured square at its own place on a noisy background.

    Only used when asked for (``source='synthetic'`` or ``GAPCOURSE_DATA=synthetic``); announces itself every time.
    """
    n_per_class = per_class or (SPLIT_SIZES[split] // len(CLASSES) // 10)
    gen = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
    n = n_per_class * len(CLASSES)
    labels = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
    images = torch.randint(0, 96, (n, *IMAGE_SHAPE), generator=gen, dtype=torch.uint8)
    palette = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                            [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]],
                           dtype=torch.uint8)
    jitter = torch.randint(-3, 4, (n, 2), generator=gen)
    for i in range(n):
        c = int(labels[i])
        top = 4 + (c // 5) * 14 + int(jitter[i, 0])
        left = 2 + (c % 5) * 5 + int(jitter[i, 1])
        top, left = max(0, min(top, 22)), max(0, min(left, 22))
        images[i, :, top:top + 10, left:left + 10] = palette[c].view(3, 1, 1)
    message = (f"\n{_BANNER}\nSYNTHETIC STAND-IN DATA ({split}, {n} images): coloured squares, NOT CIFAR-10.\n"
               f"Accuracies and plots from it say nothing about real images. Unset {DATA_ENV} to use CIFAR-10.\n"
               f"{_BANNER}")
    print(message)
    warnings.warn("gapcourse is using SYNTHETIC data, not CIFAR-10.", SyntheticDataWarning, stacklevel=2)
    return Cifar10Split(images, labels, split, "synthetic", CLASSES, synthetic=True)


# --------------------------------------------------------------------------------------------------------------------
# Normalisation (the numbers every notebook uses)

# Per-channel mean and standard deviation of the CIFAR-10 training images, on the 0..1 scale.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


_STATS: dict[tuple[str, torch.device], torch.Tensor] = {}


def _channel_stats(kind: str, device: torch.device) -> torch.Tensor:
    """MEAN or STD as a 1×3×1×1 float tensor on ``device``, on the 0..255 scale; made once per device, so that
    normalising a batch on a GPU copies nothing from the host."""
    key = (kind, device)
    cached = _STATS.get(key)
    if cached is None:
        values = torch.tensor(MEAN if kind == "mean" else STD, dtype=torch.float32).view(1, 3, 1, 1) * 255
        cached = values.to(device)
        if type(cached) is torch.Tensor:  # keep real tensors only (not the fake ones of a FakeTensorMode)
            _STATS[key] = cached
    return cached


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) N×3×H×W → float, each channel shifted and scaled to mean 0, std 1."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"normalize expects a batch N×3×H×W, got shape {tuple(images.shape)}. For one image use "
                         "images.unsqueeze(0); for H×W×3 arrays use images.permute(0, 3, 1, 2).")
    return (images.float() - _channel_stats("mean", images.device)) / _channel_stats("std", images.device)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`, to 0..1 floats for plotting."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"denormalize expects a batch N×3×H×W, got shape {tuple(images.shape)}.")
    return ((images * _channel_stats("std", images.device) + _channel_stats("mean", images.device)) / 255).clamp(0, 1)
