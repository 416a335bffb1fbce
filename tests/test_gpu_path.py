"""The GPU path, checked without a GPU (CI has none): the precision table for simulated hardware, a sync audit of the
training step on the ``meta`` device, and device checks with fake CUDA tensors. The last test needs a real GPU and
is skipped without one."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from gapcourse import build_net, checks
from gapcourse.data import Cifar10Split, normalize
from gapcourse.pipeline import augment, batches
from gapcourse.train import (PRESETS, _sgd, choose_precision, evaluate, fit, pick_recipe, predict_logits,
                             tta_views)


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
    optimizer = _sgd([{"params": params, "weight_decay": 0.0}], PRESETS["gpu"], torch.device("cuda"))
    assert optimizer.defaults.get("fused") is True
    cpu = _sgd([{"params": [torch.nn.Parameter(torch.zeros(3))], "weight_decay": 0.0}], PRESETS["cpu"],
               torch.device("cpu"))
    assert not cpu.defaults.get("fused")


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


def traffic_of_training(n_images: int, *, progress: bool = False, with_test: bool = False) -> HostTraffic:
    data = Cifar10Split(torch.zeros(n_images, 3, 32, 32, dtype=torch.uint8), torch.arange(n_images) % 10, "train",
                        "zeros")
    recipe = replace(PRESETS["gpu"], batch_size=8, width=0.25, precision="fp32")
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


def test_the_progress_bar_reads_one_loss_every_log_every_steps():
    traffic_of_training(16)
    quiet, chatty = traffic_of_training(64), traffic_of_training(64 * 7, progress=True)  # 8 and 56 steps per epoch
    assert chatty.reads - quiet.reads == 2 * (56 // 50)


# Fake CUDA tensors -------------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_cuda():
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
def test_twenty_steps_on_a_real_gpu_never_sync():
    n = 20 * 64
    data = Cifar10Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), torch.arange(n) % 10, "train",
                        "random")
    recipe = replace(pick_recipe(torch.device("cuda"), announce=False), batch_size=64, epochs=1)
    model = build_net(width=recipe.width).cuda()
    steps = []
    model.register_forward_pre_hook(lambda *_: steps.append(1))
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError, match="synchroniz"):  # the epoch's one read, after its last step
            fit(model, data, None, recipe, device="cuda", epochs=1, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(steps) == 20, f"a sync stopped training after {len(steps)} of 20 steps"
