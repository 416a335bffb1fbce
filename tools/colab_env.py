"""Colab's runtime, rebuilt here: Python 3.13 (Debian trixie's, in a debootstrap root) with Colab's package versions.

    python3 tools/colab_env.py build              # build (or reuse) the environment; prints where it is
    python3 tools/colab_env.py test [PYTEST ARGS] # build, then run the Colab tests in it (what `make test-colab` does)
    python3 tools/colab_env.py run -- CMD...      # any command inside it, in the repository (e.g. `python -m pip list`)

How it is built (as root, as CI runs), every step cached outside the clone under ``$GAPCOURSE_COLAB_CACHE``
(default ``~/.cache/gapcourse-colab``):

1. ``base-<hash>/root``: ``debootstrap --variant=minbase --include=python3.13,python3.13-venv,python3-pip trixie``
   from the Debian mirror apt already uses (its sources list); the .debs stay in ``debs/``. Installs debootstrap with
   apt-get first if it is missing. Keyed by this recipe only, so a change of Colab's versions does not redo it.
2. ``env-<hash>/root``: a copy of the base, the host's resolv.conf and CA bundle (the file ``PIP_CERT`` names, else
   ``/etc/ssl/certs/ca-certificates.crt``) copied to the same paths, ``python3.13 -m venv /opt/v``, Colab's pip,
   then exactly the versions in ``constraints-colab.txt`` (``pip install -r``: the file is Colab's list, not only
   bounds). Every installed distribution must be named there, so nothing floats to whatever PyPI has today. Keyed by
   ``constraints-colab.txt`` and the functions below that build it: the environment is rebuilt when either changes,
   reused otherwise; older ``env-*`` folders are removed once a new one is complete.
3. ``wheels/``: every wheel the builds downloaded (``pip download``), reused by the next build, so a rebuild after a
   version change downloads only what changed.

Commands run with ``unshare --mount`` (mounts vanish with the command, nothing leaks onto the host) and ``chroot``,
with an empty environment apart from what is passed on purpose (no ``PIP_FIND_LINKS``, no host pip config): /proc,
/dev, /dev/shm and /sys are bound, the repository at its own path, ``GAPCOURSE_DATA`` read-only at its own path, and a
fresh /tmp per command.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints-colab.txt"
SUITE = "trixie"  # Debian 13: python3.13 (Colab's Python since 2026-08-25)
INCLUDE = "python3.13,python3.13-venv,python3-pip"
VARIANT = "minbase"
VENV = "/opt/v"  # inside the root
CACHE = Path(os.environ.get("GAPCOURSE_COLAB_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                            / "gapcourse-colab"))
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
COLAB_TESTS = ["tests/test_colab_rehearsal.py", "tests/test_colab_env.py",
               # Colab's free GPU is a T4 (sm_75): fp16, never bf16, decided by compute capability on Colab's torch
               "tests/test_gpu_path.py::test_a_t4_never_gets_bf16_even_though_torch_says_it_is_supported",
               "tests/test_gpu_path.py::test_precision_is_chosen_by_capability"]


def say(*parts: object) -> None:
    print("[colab-env]", *parts, flush=True)


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def base_key() -> str:
    return digest(SUITE.encode(), VARIANT.encode(), INCLUDE.encode())


def env_key() -> str:
    """constraints-colab.txt and the code that builds the environment (not the code that runs tests in it)."""
    recipe = "".join(inspect.getsource(f) for f in (build_base, build_env, chroot_run, pinned, ca_bundle))
    return digest(base_key().encode(), CONSTRAINTS.read_bytes(), recipe.encode(), VENV.encode())


def debian_mirror() -> str:
    """The Debian archive URI apt already uses (deb822 .sources or a classic sources.list line)."""
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    files += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for f in files:
        text = f.read_text() if f.is_file() else ""
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def ca_bundle() -> Path:
    return Path(os.environ.get("PIP_CERT") or DEFAULT_CA)


def chroot_run(root: Path, argv: list[str], *, binds: dict[str, tuple[Path, bool]] | None = None,
               env: dict[str, str] | None = None, cwd: str = "/", check: bool = True) -> int:
    """Run ``argv`` inside ``root`` (in a private mount namespace); ``binds``: inside path -> (host path, read-only)."""
    binds = dict(binds or {})
    tmp = Path(tempfile.mkdtemp(prefix="gapcourse-colab-tmp-"))
    binds.setdefault("/tmp", (tmp, False))
    (CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    binds.setdefault("/var/cache/gapcourse-wheels", (CACHE / "wheels", False))
    lines = ["set -e"]
    for inside, host in [("/proc", "/proc"), ("/dev", "/dev"), ("/dev/shm", "/dev/shm"), ("/sys", "/sys")]:
        lines.append(f"mount --bind {host} {shlex.quote(str(root) + inside)}")
    for inside, (host, ro) in binds.items():
        target = shlex.quote(str(root) + inside)
        lines.append(f"mkdir -p {target} && mount --bind {shlex.quote(str(host))} {target}")
        if ro:
            lines.append(f"mount -o remount,bind,ro {target}")
    full_env = {"HOME": "/root", "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                "PIP_CERT": str(ca_bundle()), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180",
                "PIP_ROOT_USER_ACTION": "ignore", "TMPDIR": "/tmp", **(env or {})}
    inner = ["env", "-i", *[f"{k}={v}" for k, v in full_env.items()], "sh", "-c",
             f"cd {shlex.quote(cwd)} && exec \"$@\"", "sh", *argv]
    lines.append("exec chroot " + shlex.quote(str(root)) + " " + shlex.join(inner))
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if check and done.returncode:
        raise SystemExit(f"[colab-env] failed ({done.returncode}): {shlex.join(argv)}")
    return done.returncode


def ensure_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    say("installing debootstrap (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True, env=env, stdout=subprocess.DEVNULL)


def build_base() -> Path:
    base = CACHE / f"base-{base_key()}"
    if (base / ".complete").exists():
        return base / "root"
    ensure_debootstrap()
    shutil.rmtree(base, ignore_errors=True)
    (CACHE / "debs").mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    say(f"debootstrap {SUITE} ({VARIANT}, {INCLUDE}) from {mirror}")
    start = time.monotonic()
    subprocess.run(["debootstrap", f"--variant={VARIANT}", f"--include={INCLUDE}", f"--cache-dir={CACHE / 'debs'}",
                    SUITE, str(base / "root"), mirror], check=True, stdout=subprocess.DEVNULL)
    (base / ".complete").write_text(f"{SUITE} {mirror} {time.monotonic() - start:.0f} s\n")
    say(f"base root built in {time.monotonic() - start:.0f} s")
    return base / "root"


def pinned(path: Path = CONSTRAINTS) -> dict[str, str]:
    """name (normalised) -> version, from ``name==version`` lines."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return out


def build_env() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env_dir = CACHE / f"env-{env_key()}"
        root = env_dir / "root"
        if (env_dir / ".complete").exists():
            say(f"reusing {env_dir} (built from the current constraints-colab.txt and build recipe)")
            return root
        start = time.monotonic()
        base = build_base()
        shutil.rmtree(env_dir, ignore_errors=True)
        env_dir.mkdir(parents=True)
        (CACHE / "wheels").mkdir(exist_ok=True)
        say(f"copying the base root to {root}")
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
        for host in ["/etc/resolv.conf", str(ca_bundle())]:
            target = root / host.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            shutil.copyfile(host, target)
        shutil.copyfile(CONSTRAINTS, root / "opt" / "constraints-colab.txt")
        pip = f"pip=={pinned()['pip']}"  # Colab's pip first: it resolves and installs the rest, as on Colab
        say(f"python3.13 -m venv {VENV}; {pip}; pip install -r constraints-colab.txt")
        chroot_run(root, ["python3.13", "-m", "venv", VENV])
        chroot_run(root, ["python", "-m", "pip", "install", "-q", pip])
        wheels = "/var/cache/gapcourse-wheels"
        chroot_run(root, ["python", "-m", "pip", "download", "-q", "-d", wheels, "-r", "/opt/constraints-colab.txt"])
        chroot_run(root, ["python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
                          "-r", "/opt/constraints-colab.txt"])
        chroot_run(root, ["sh", "-c", "python -m pip freeze --all > /opt/colab-freeze.txt"])
        installed = pinned(root / "opt" / "colab-freeze.txt")
        unpinned = sorted(set(installed) - set(pinned()))
        if unpinned:
            raise SystemExit(f"[colab-env] installed but not pinned in constraints-colab.txt: {unpinned}; add them "
                             "with Colab's versions (googlecolab/backend-info pip-freeze.txt)")
        chroot_run(root, ["python", "-c", "import sys, torch, torchvision, numpy; print('Python', sys.version.split()"
                          "[0], '| torch', torch.__version__, '| torchvision', torchvision.__version__, '| numpy',"
                          " numpy.__version__, '| cuda available:', torch.cuda.is_available())"])
        (env_dir / ".complete").write_text(f"built in {time.monotonic() - start:.0f} s\n")
        say(f"environment built in {time.monotonic() - start:.0f} s: {root}")
        for old in CACHE.glob("env-*"):
            if old != env_dir:
                say(f"removing the previous environment {old}")
                shutil.rmtree(old, ignore_errors=True)
        return root


def run_in_env(argv: list[str]) -> int:
    root = build_env()
    binds = {str(ROOT): (ROOT, False)}
    env = {"MPLBACKEND": "Agg", "GAPCOURSE_PROFILE": os.environ.get("GAPCOURSE_PROFILE", "fast"),
           "GAPCOURSE_COLAB_ENV": "1"}  # tests/test_colab_env.py runs only here
    data = os.environ.get("GAPCOURSE_DATA")
    if data and Path(data).is_dir():
        binds[str(Path(data).resolve())] = (Path(data).resolve(), True)
        env["GAPCOURSE_DATA"] = str(Path(data).resolve())
    elif data:
        env["GAPCOURSE_DATA"] = data  # e.g. "synthetic"
    return chroot_run(root, argv, binds=binds, env=env, cwd=str(ROOT), check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "test", "run"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("[colab-env] debootstrap, mount and chroot need root (CI runs as root)")
    if opts.command == "build":
        print(build_env())
        return 0
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    if opts.command == "run":
        return run_in_env(args)
    start = time.monotonic()
    rc = run_in_env(["python", "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                     *(args or COLAB_TESTS)])
    say(f"Colab tests finished in {time.monotonic() - start:.0f} s (rc {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
