"""The GPU path, checked without a GPU (CI has none): the precision table for simulated hardware; the fp16 path
(GradScaler + fused SGD) with an overflow on its first step; the cuDNN/TF32 switches; a sync audit of the training
step on the ``meta`` device, and of the 16-bit step on the CPU with a stand-in for CUDA's sync debug mode
(gapcourse.studies.bench.audit_steps, the same audit ``bench --verify-gpu`` runs on a GPU); pinned uploads and device checks
with fake CUDA tensors. The last test needs a real GPU and is skipped without one."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from gapcourse import build_net, checks
from gapcourse import train as train_module
from gapcourse.studies.bench import HostSyncStandIn, audit_steps
from gapcourse.data import Cifar10Split, normalize
from gapcourse.pipeline import augment, batches
from gapcourse.recipes import PRESETS, Precision, choose_precision, pick_recipe
from gapcourse.train import device_settings, evaluate, fit, make_optimizer, predict_logits, tta_views


# Precision by capability ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device_type, capability, cpu_bf16, mode", [
    ("cuda", (6, 0), False, "fp32"),   # P100
    ("cuda", (6, 1), False, "fp32"),   # GTX 10xx
    ("cuda", (7, 0), False, "fp16"),   # V100
    ("cuda", (7, 5), False, "fp16"),   # T4 (Colab's free GPU), RTX 20xx
    ("cuda", (8, 0), False, "bf16"),   # A100
    ("cuda", (8, 6), False, "bf16"),   # RTX 30xx
    ("cuda", (8, 9), False, "bf16"),   # L4, RTX 40xx
    ("cuda", (9, 0), False, "bf16"),   # H100
    ("cuda", None, False, "fp32"),     # unknown capability: the safe choice
    ("cpu", None, True, "bf16"),       # AVX-512 BF16 / AMX
    ("cpu", None, False, "fp32"),      # no native bf16: emulation would be slower
    ("mps", None, False, "fp32"),
])
def test_precision_is_chosen_by_capability(device_type, capability, cpu_bf16, mode):
    chosen = choose_precision(device_type, capability, cpu_bf16)
    assert chosen.mode == mode and chosen.reason
    assert chosen.needs_grad_scaler == (mode == "fp16")
    assert chosen.autocast_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[mode]


def test_a_t4_never_gets_bf16_even_though_torch_says_it_is_supported(monkeypatch):
    """torch.cuda.is_bf16_supported() counts emulation and says True on a T4; the course must not use it there."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    recipe = pick_recipe(torch.device("cuda"), announce=False)
    assert recipe.name == "gpu" and recipe.precision == "fp16"


def test_mps_gets_its_own_preset_without_channels_last():
    recipe = pick_recipe(torch.device("mps"), announce=False)
    assert recipe.name == "mps" and not recipe.channels_last and recipe.precision == "fp32"


def test_info_prints_the_precision_that_will_be_used(capsys):
    from gapcourse.__main__ import main

    assert main(["info"]) in (0, 1)
    assert "precision used for training:" in capsys.readouterr().out


def test_the_gpu_optimizer_is_fused_so_the_fp16_scaler_does_not_sync():
    params = [torch.nn.Parameter(torch.zeros(3, device="meta"))]
    optimizer = make_optimizer([{"params": params, "weight_decay": 0.0}], PRESETS["gpu"], torch.device("cuda"))
    assert optimizer.defaults.get("fused") is True
    cpu = make_optimizer([{"params": [torch.nn.Parameter(torch.zeros(3))], "weight_decay": 0.0}], PRESETS["cpu"],
               torch.device("cpu"))
    assert not cpu.defaults.get("fused")


def test_without_fused_sgd_the_cuda_optimizer_says_so_once(monkeypatch):
    """An older torch has no fused SGD: the fp16 scaler then reads one number per step. Say so, once."""
    monkeypatch.setattr(train_module, "_has_fused_sgd", lambda: False)
    monkeypatch.setattr(train_module, "_said_unfused", False)
    groups = [{"params": [torch.nn.Parameter(torch.zeros(3, device="meta"))], "weight_decay": 0.0}]
    with pytest.warns(UserWarning, match="no fused SGD") as caught:
        first = make_optimizer(groups, PRESETS["gpu"], torch.device("cuda"))
        make_optimizer(groups, PRESETS["gpu"], torch.device("cuda"))
    assert len([w for w in caught if "fused" in str(w.message)]) == 1
    assert not first.defaults.get("fused")


# fp16 + GradScaler + fused SGD (the T4 path), on the CPU ---------------------------------------------------------
def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))


def _scaled_steps(model, optimizer, overflow_first: bool, steps: int = 2):
    """fit's step in fp16 on the CPU: autocast, GradScaler, the optimizer. Step 1 can be forced to overflow."""
    scaler = torch.amp.GradScaler("cpu")
    x, y = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 10
    scales = []
    for step in range(steps):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if overflow_first and step == 0:
            next(model.parameters()).grad.view(-1)[0] = float("inf")
        scaler.step(optimizer)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales


def test_fp16_fused_sgd_survives_an_overflow_on_its_first_step(monkeypatch):
    """GradScaler skips an overflowing step; fused SGD must not be left with uninitialised momentum buffers.
    ``empty_like`` memory can hold anything; here it holds NaN, so that the test does not depend on luck."""
    real_empty_like = torch.empty_like
    monkeypatch.setattr(torch, "empty_like", lambda t, *a, **k: real_empty_like(t, *a, **k).fill_(float("nan")))
    recipe = replace(PRESETS["gpu"], lr=0.1)
    fused_net, plain_net = _tiny_net(), _tiny_net()
    fused = make_optimizer([{"params": list(fused_net.parameters()), "weight_decay": 0.0}], recipe,
                           torch.device("cpu"), fused=True)
    assert fused.defaults.get("fused") is True
    plain = torch.optim.SGD(plain_net.parameters(), lr=0.1, momentum=0.9, nesterov=True)  # PyTorch's own first step
    scales = _scaled_steps(fused_net, fused, overflow_first=True)
    _scaled_steps(plain_net, plain, overflow_first=True)
    assert scales[0] < 65536.0  # the first step overflowed and was skipped
    for p, q in zip(fused_net.parameters(), plain_net.parameters()):
        buffer = fused.state[p]["momentum_buffer"]
        assert torch.isfinite(buffer).all() and torch.isfinite(p).all()
        torch.testing.assert_close(buffer, plain.state[q]["momentum_buffer"])
        torch.testing.assert_close(p, q)


def test_zero_momentum_buffers_give_pytorchs_own_first_step():
    """With dampening 0, momentum·0 + gradient = gradient: the same first step (bit for bit) as fused SGD's own."""
    recipe = replace(PRESETS["gpu"], lr=0.1)
    ours_net, theirs_net = _tiny_net(), _tiny_net()
    ours = make_optimizer([{"params": list(ours_net.parameters()), "weight_decay": 0.0}], recipe,
                          torch.device("cpu"), fused=True)
    assert all(torch.equal(s["momentum_buffer"], torch.zeros_like(p)) for p, s in ours.state.items())
    theirs = torch.optim.SGD(theirs_net.parameters(), lr=0.1, momentum=0.9, nesterov=True, fused=True)
    _scaled_steps(ours_net, ours, overflow_first=False, steps=3)
    _scaled_steps(theirs_net, theirs, overflow_first=False, steps=3)
    for p, q in zip(ours_net.parameters(), theirs_net.parameters()):
        assert torch.equal(p, q) and torch.equal(ours.state[p]["momentum_buffer"], theirs.state[q]["momentum_buffer"])


# cuDNN and TF32 switches --------------------------------------------------------------------------------------------
@pytest.fixture
def cuda_switches():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32
    cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = False, True, True
    yield lambda: (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def test_an_fp32_run_on_cuda_has_no_tf32_and_every_switch_is_restored(cuda_switches):
    with device_settings("cuda", Precision("fp32", "plain")):
        assert cuda_switches() == (True, False, False)  # autotuning on; fp32 means fp32, not TF32
    assert cuda_switches() == (False, True, True)
    with device_settings("cuda", Precision("bf16", "native")):
        assert cuda_switches() == (True, True, True)  # a 16-bit run leaves TF32 as the user set it
    assert cuda_switches() == (False, True, True)
    with device_settings("cpu", Precision("fp32", "cpu")):
        assert cuda_switches() == (False, True, True)


def test_fit_sets_the_switches_for_its_run_and_restores_them_however_it_ends(cuda_switches):
    seen = []

    class Stops(torch.nn.Module):
        def to(self, *args, **kwargs):  # fit's first touch of the device: record the switches, then fail
            seen.append(cuda_switches())
            raise RuntimeError("stop here")

    data = Cifar10Split(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(4), "train", "zeros")
    with pytest.raises(RuntimeError, match="stop here"):
        fit(Stops(), data, None, PRESETS["plain"], device="cuda", epochs=1, progress=False)
    assert seen == [(True, False, False)]
    assert cuda_switches() == (False, True, True)


# Sync audit ------------------------------------------------------------------------------------------------------------
class HostTraffic(TorchDispatchMode):
    """Counts what makes a CPU wait for a device: scalar reads (``.item()``) and copies from the device to the host;
    and counts copies from the host to the device. On ``meta`` tensors such reads have no data, so they return
    zeros after being counted."""

    def __init__(self):
        super().__init__()
        self.reads = 0
        self.uploads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
            return 0.0 if args[0].is_floating_point() else 0
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device", src.device)
            if src.device.type == "meta" and torch.device(dst).type == "cpu":
                self.reads += 1
                dtype = kwargs.get("dtype") or src.dtype
                return torch.zeros(src.shape, dtype=dtype)
            if src.device.type == "cpu" and torch.device(dst).type == "meta":
                self.uploads += 1
        return func(*args, **kwargs)


def traffic_of_training(n_images: int, *, progress: bool = False, with_test: bool = False,
                        **changes) -> HostTraffic:
    data = Cifar10Split(torch.zeros(n_images, 3, 32, 32, dtype=torch.uint8), torch.arange(n_images) % 10, "train",
                        "zeros")
    recipe = replace(PRESETS["gpu"], batch_size=8, width=0.25, precision="fp32", **changes)
    model = build_net(width=0.25)
    with HostTraffic() as traffic:
        fit(model, data, data if with_test else None, recipe, device="meta", epochs=2, progress=progress)
    return traffic


def test_the_training_step_never_waits_for_the_device():
    """Twice the steps, the same host traffic: nothing is read back or uploaded per step, only per epoch."""
    traffic_of_training(16)  # first use of a device uploads normalize's constants once (then they are cached)
    short, long = traffic_of_training(32), traffic_of_training(64)  # 4 and 8 steps per epoch
    assert short.reads == long.reads <= 2, (short.reads, long.reads)  # one read of the epoch's numbers per epoch
    assert short.uploads == long.uploads, (short.uploads, long.uploads)


def test_the_gpu_study_candidates_starting_weights_add_no_traffic_per_step():
    """The candidate's whitening and identity filters are set once, before the first step (on meta, with no pixels to
    measure, only the freezing): the step itself stays free of reads and uploads."""
    traffic_of_training(16)
    short = traffic_of_training(32, whiten="frozen", dirac=True, cutout=12)
    long = traffic_of_training(64, whiten="frozen", dirac=True, cutout=12)
    assert short.reads == long.reads <= 2 and short.uploads == long.uploads, (short, long)


@pytest.mark.slow
def test_the_progress_bar_reads_one_loss_every_log_every_steps():
    traffic_of_training(16)
    quiet, chatty = traffic_of_training(64), traffic_of_training(64 * 7, progress=True)  # 8 and 56 steps per epoch
    assert chatty.reads - quiet.reads == 2 * (56 // 50)


# The 16-bit step, audited on the CPU: autocast, GradScaler, the fused optimizer, tensor constructors ------------------
def _small(precision: str):
    return replace(PRESETS["gpu"], batch_size=8, width=0.25, precision=precision)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_the_16bit_step_never_waits_for_the_device(precision):
    """Every step of fit (autocast, GradScaler with the fused step, EMA, schedule, batches) runs with anything that
    would make a CPU wait for a GPU raising an error: scalar reads, device→host copies, tensors built from lists."""
    audit = audit_steps(_small(precision), "cpu", steps=3, guard=HostSyncStandIn, fused=True)  # as on CUDA
    assert audit.clean and audit.reached == 3 and audit.sync_at is None, audit.describe()


def test_the_audit_takes_the_epochs_one_read_for_what_it_is(monkeypatch):
    """On CUDA, fit's one read per epoch (``.tolist()`` after the last step) raises under the sync guard; the audit
    must name it as that read, not as a sync in the step. Here ``.tolist()`` raises as it would there."""
    import contextlib

    guarded, real_tolist = [], torch.Tensor.tolist

    def tolist(self):
        if guarded:
            raise RuntimeError("called a synchronizing CUDA operation (stand-in)")
        return real_tolist(self)

    @contextlib.contextmanager
    def guard():
        guarded.append(True)
        yield

    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    audit = audit_steps(_small("fp32"), "cpu", steps=3, guard=guard)
    assert audit.epoch_read and audit.clean and audit.reached == 3, audit.describe()
    assert "gapcourse/train.py" in audit.sync_at and ".tolist()" in audit.sync_at


def test_the_audit_catches_the_scalers_read_when_sgd_is_not_fused():
    """Without the fused optimizer, GradScaler reads "did it overflow?" every step: the audit names fit's line."""
    audit = audit_steps(_small("fp16"), "cpu", steps=3, guard=HostSyncStandIn)
    assert not audit.clean and audit.reached == 2  # the first guarded step
    assert "gapcourse/train.py" in audit.sync_at and "scaler.step(optimizer)" in audit.sync_at, audit.describe()


def test_a_tensor_built_from_a_list_in_the_step_is_caught_and_setup_is_not_blamed(monkeypatch):
    """``torch.tensor(list, device=...)`` is a blocking copy on CUDA (on ``meta`` it is skipped, so the meta audit
    above cannot see it). One in the third step is caught there, with fit's line and the line that made it; the
    same sync in fit's setup (before the first step) is not blamed on training."""
    real_cross_entropy = torch.nn.functional.cross_entropy
    calls = []

    def cross_entropy(logits, y, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            torch.tensor([1.0, 2.0], device=logits.device)  # the culprit
        return real_cross_entropy(logits, y, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", cross_entropy)
    audit = audit_steps(_small("fp16"), "cpu", steps=4, guard=HostSyncStandIn, fused=True)
    assert audit.reached == 3 and not audit.clean
    assert "gapcourse/train.py" in audit.sync_at and "cross_entropy" in audit.sync_at
    assert "test_gpu_path.py" in audit.origin and "the culprit" in audit.origin

    calls.clear()
    real_average = train_module.WeightAverage.__init__

    def average_with_a_sync(self, *args, **kwargs):  # setup: the same constructor, before the first step
        torch.tensor([1.0, 2.0]).sum().item()
        real_average(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", real_cross_entropy)
    monkeypatch.setattr(train_module.WeightAverage, "__init__", average_with_a_sync)
    audit = audit_steps(_small("fp16"), "cpu", steps=4, guard=HostSyncStandIn, fused=True)
    assert audit.clean and audit.reached == 4, audit.describe()


class PinnedUploads(TorchDispatchMode):
    """Host→device copies under fake CUDA tensors, each noted with whether it came from pinned memory and was
    asynchronous. (Fake tensors cannot pin: the pinned tensor is the same tensor, remembered as pinned.)"""

    def __init__(self):
        super().__init__()
        self.pinned, self.uploads = set(), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._pin_memory.default:
            self.pinned.add(id(args[0]))
            return args[0]
        if func is torch.ops.aten._to_copy.default and args[0].device.type == "cpu" \
                and torch.device(kwargs.get("device") or "cpu").type == "cuda":
            self.uploads.append((id(args[0]) in self.pinned, bool(kwargs.get("non_blocking"))))
        return func(*args, **kwargs)


@pytest.mark.parametrize("n_batches", [2, 5])
def test_an_epochs_uploads_are_pinned_asynchronous_and_do_not_grow_with_its_steps(n_batches, monkeypatch):
    from gapcourse import data as data_module

    skip_unless_cuda_can_be_faked()
    generator = torch.Generator().manual_seed(0)
    monkeypatch.setattr(data_module, "_STATS", {})
    with FakeTensorMode(allow_non_fake_inputs=True), PinnedUploads() as traffic:
        n = 16 * n_batches
        data = Cifar10Split(torch.empty(n, 3, 32, 32, dtype=torch.uint8, device="cuda"),
                            torch.arange(n, device="cuda") % 10, "train", "fake")  # on the GPU, as fit keeps it
        for kind in ("mean", "std"):  # normalize's constants, uploaded once per device (not cached for fakes)
            data_module._STATS[kind, data.images.device] = data_module._channel_stats(kind, data.images.device)
        traffic.uploads.clear()
        steps = list(batches(data, 16, shuffle=True, augment_padding=4, generator=generator, device="cuda", cutout=8))
    assert len(steps) == n_batches
    assert traffic.uploads == [(True, True), (True, True)]  # the epoch's order, then its draws: one copy each


# Fake CUDA tensors -------------------------------------------------------------------------------------------------------
def skip_unless_cuda_can_be_faked() -> None:
    """Older torch (2.9) initialises CUDA for indexing a fake tensor, which needs a driver: feature-detected."""
    with FakeTensorMode(allow_non_fake_inputs=True), torch.device("cuda"):
        try:
            torch.empty(2, dtype=torch.int64)[:, None] + torch.arange(2)
        except RuntimeError as err:
            pytest.skip(f"torch {torch.__version__} cannot fake CUDA tensors without a CUDA driver "
                        f"({str(err).splitlines()[0]}); these tests run with constraints.txt's torch")


@pytest.fixture
def fake_cuda():
    skip_unless_cuda_can_be_faked()
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, torch.device("cuda"):
        yield mode


def test_normalize_and_augment_stay_on_the_device(fake_cuda):
    x = torch.empty(8, 3, 32, 32, dtype=torch.uint8)
    assert x.device.type == "cuda"
    z = normalize(x)
    assert z.device.type == "cuda" and z.dtype == torch.float32
    a = augment(x, 4, None)
    assert a.device.type == "cuda" and a.dtype == torch.uint8 and a.shape == x.shape
    views, weights = tta_views(z, "flip_shift")
    assert views.device.type == "cuda" and views.shape == (6 * 8, 3, 32, 32) and sum(weights) == pytest.approx(1)


def test_training_batches_are_built_on_the_device(fake_cuda):
    data = Cifar10Split(torch.empty(40, 3, 32, 32, dtype=torch.uint8), torch.arange(40) % 10, "train", "fake")
    with torch.device("cpu"):
        generator = torch.Generator().manual_seed(0)
    x, y = next(batches(data, 16, shuffle=True, augment_padding=4, generator=generator, device="cuda"))
    assert x.device.type == "cuda" and y.device.type == "cuda" and x.shape == (16, 3, 32, 32)


def test_predict_logits_runs_on_the_device_and_returns_to_the_host(fake_cuda):
    model = build_net(width=0.25)
    assert next(model.parameters()).device.type == "cuda"
    images = torch.empty(20, 3, 32, 32, dtype=torch.uint8)
    for tta in ("none", "flip", "flip_shift"):
        recipe = replace(PRESETS["gpu"], tta=tta, precision="fp32")
        logits = predict_logits(model, images, device="cuda", recipe=recipe, batch_size=8)
        assert logits.shape == (20, 10) and logits.device.type == "cpu"


def test_evaluate_reaches_its_final_read_without_a_device_mismatch(fake_cuda):
    from torch._subclasses.fake_tensor import DataDependentOutputException

    model = build_net(width=0.25)
    data = Cifar10Split(torch.empty(20, 3, 32, 32, dtype=torch.uint8), torch.arange(20) % 10, "test", "fake")
    with pytest.raises(DataDependentOutputException):  # the loss's .item(): the only place it needs real numbers
        evaluate(model, data, device="cuda", recipe=replace(PRESETS["gpu"], precision="fp32"))


def test_cam_helpers_work_on_device_tensors(fake_cuda):
    maps, weights = torch.empty(2, 16, 4, 4), torch.empty(10, 16)
    cams = checks.ref_class_activation_map(maps, weights)
    assert cams.shape == (2, 10, 4, 4) and cams.device.type == "cuda"


# A real GPU ----------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here; run on a GPU machine)")
@pytest.mark.parametrize("precision", ["native", "fp16"])
def test_twenty_steps_on_a_real_gpu_never_sync(precision):
    """The data, normalize's constants and fit's setup are in place before torch.cuda.set_sync_debug_mode("error")
    switches on (at the second step's forward pass, after the first step's one-time work); any sync after that is
    named by its line. The only one allowed
    is fit's read of the epoch's numbers after the last step. (Its logic is tested on the CPU above.)"""
    recipe = pick_recipe(torch.device("cuda"), announce=False)
    if precision == "fp16":  # the T4's path: fp16, GradScaler and the fused step
        recipe = replace(recipe, precision="fp16")
    audit = audit_steps(replace(recipe, batch_size=64), "cuda", steps=20)
    assert audit.reached == 20 and audit.guarded_from == 2, audit.describe()
    assert audit.clean, audit.describe()
