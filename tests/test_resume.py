"""gapcourse.studies.resume: a run stopped after an epoch and resumed ends with exactly the weights of one that never stopped;
a resume file from another run, an unreadable one and a changed one are refused and left as they are."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gapcourse import build_net
from gapcourse.studies import resume as resume_mod
from gapcourse.data import synthetic_cifar10
from gapcourse.device import seed_everything
from gapcourse.recipes import Recipe
from gapcourse.studies.resume import ResumeError, fit_resumable
from gapcourse.train import fit

# Every part of the state a resume must carry: momentum, weight average, schedule, augmentation draws (shift,
# mirror, cutout) and a low-resolution first epoch.
RECIPE = Recipe("resume-test", epochs=3, batch_size=20, lr=0.05, width=0.25, ema=0.9, label_smoothing=0.1,
                precision="fp32", cutout=8, low_res_epochs=1, decay_norm_and_bias=False)


@pytest.fixture(scope="module")
def data():
    return synthetic_cifar10("train", per_class=6), synthetic_cifar10("test", per_class=2)


def _run(data, seed=0, recipe=RECIPE, resume=None):
    """One run as notebook 03 seeds it: with ``fit``, or with ``fit_resumable`` and the file ``resume``."""
    generator = seed_everything(seed)
    model = build_net(width=recipe.width)
    options = dict(generator=generator, epochs=recipe.epochs, progress=False)
    history = fit(model, data[0], data[1], recipe, **options) if resume is None else \
        fit_resumable(model, data[0], data[1], recipe, resume, **options)
    return model, history


class Stop(Exception):
    pass


def _stop_after(monkeypatch, epochs_saved: int):
    """Make the run stop (as a killed process would) right after its ``epochs_saved``-th save."""
    real = resume_mod.save_state

    def save_then_maybe_stop(*args, **kwargs):
        path = real(*args, **kwargs)
        if kwargs["epoch"] == epochs_saved:
            raise Stop
        return path

    monkeypatch.setattr(resume_mod, "save_state", save_then_maybe_stop)


def _cut_off(monkeypatch, data, path, **kwargs):
    """Run until the first epoch is saved to ``path``, then stop as a killed process would."""
    with monkeypatch.context() as m:
        _stop_after(m, 1)
        with pytest.raises(Stop):
            _run(data, resume=path, **kwargs)


@pytest.mark.parametrize("arithmetic", [dict(precision="fp32"), dict(precision="bf16", channels_last=True)],
                         ids=["fp32", "bf16-channels-last"])
def test_a_resumed_run_ends_with_the_weights_of_an_unbroken_one(data, tmp_path, monkeypatch, arithmetic, recwarn):
    recipe = replace(RECIPE, **arithmetic)
    unbroken, unbroken_history = _run(data, recipe=recipe)
    path = tmp_path / "run.pt"
    _cut_off(monkeypatch, data, path, recipe=recipe)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    resumed, history = _run(data, recipe=recipe, resume=path)
    assert not [w for w in recwarn if "differs from the one before" in str(w.message)]  # same machine: no warning
    for (name, a), b in zip(unbroken.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming"
    assert history.epoch == [1, 2, 3] and history.step_loss == unbroken_history.step_loss
    assert history.test_acc == unbroken_history.test_acc and history.lr == unbroken_history.lr
    assert [(p["from_epoch"], p["to_epoch"]) for p in history.pieces] == [(1, 1), (2, 3)]
    assert all({"device", "torch", "commit", "threads", "started"} <= set(p) for p in history.pieces)
    assert unbroken_history.pieces == []  # a run without a resume file records no pieces


def test_a_finished_run_is_read_back_without_training(data, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    first, first_history = _run(data, resume=path)
    import gapcourse.train as train_mod

    monkeypatch.setattr(train_mod, "train_step", lambda *a, **k: pytest.fail("trained again"))
    again, history = _run(data, resume=path)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert history.test_acc == first_history.test_acc and len(history.pieces) == 1


@pytest.mark.parametrize("change", ["seed", "epochs", "recipe"])
def test_another_runs_file_is_refused_and_left_as_it_is(data, tmp_path, monkeypatch, change):
    path = tmp_path / "run.pt"
    _cut_off(monkeypatch, data, path)
    before = path.read_bytes()
    other = {"seed": dict(seed=1), "epochs": dict(recipe=replace(RECIPE, epochs=4)),
             "recipe": dict(recipe=replace(RECIPE, cutout=0))}[change]
    expected = {"seed": "start_weights", "epochs": "epochs", "recipe": "recipe"}[change]
    with pytest.raises(ResumeError, match=f"belongs to another run .*{expected}.*move or delete it"):
        _run(data, resume=path, **other)
    assert path.read_bytes() == before


def test_an_unreadable_or_changed_file_is_refused_and_left_as_it_is(data, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ResumeError, match="not a readable resume file.*left as it is"):
        _run(data, resume=path)
    assert path.read_bytes() == b"not a torch file"

    path.unlink()
    _cut_off(monkeypatch, data, path)
    state = torch.load(path, weights_only=True)
    state["model"]["body.0.weight"] += 1e-3  # a weight changed by hand, digest not updated
    torch.save(state, path)
    before = path.read_bytes()
    with pytest.raises(ResumeError, match="changed since fit wrote it"):
        _run(data, resume=path)
    assert path.read_bytes() == before

    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(ResumeError, match="is a folder"):
        _run(data, resume=tmp_path / "folder.pt")


def test_a_budgeted_run_cannot_be_resumed(data, tmp_path):
    with pytest.raises(ValueError, match="needs a fixed number of epochs"):
        fit_resumable(build_net(width=0.25), data[0], None, replace(RECIPE, budget_s=30), tmp_path / "r.pt",
                      progress=False)
    assert not (tmp_path / "r.pt").exists()


def test_the_gpu_study_resumes_a_cut_off_run_and_removes_its_file_once_recorded(data, tmp_path, monkeypatch,
                                                                                   isolated_cache, capsys):
    from gapcourse.studies import ablation
    from gapcourse.config import profile

    tiny = replace(RECIPE, name="gpu-tiny")  # (the gpu study's recipes are all named gpu…)
    monkeypatch.setattr(ablation, "gpu_steps", lambda: [("baseline", "tiny baseline", tiny)])
    study = dict(device=torch.device("cpu"), seeds=(0,), progress=False)  # one step: the final one, seed 0
    unbroken = ablation.run_gpu_study(data[0], data[1], profile("full", announce=False),
                                      output=tmp_path / "unbroken.json", **study)["runs"][0]
    with monkeypatch.context() as m:
        _stop_after(m, 2)
        with pytest.raises(Stop):
            ablation.run_gpu_study(data[0], data[1], profile("full", announce=False), output=tmp_path / "cut.json",
                                   **study)
    (left,) = (isolated_cache / "resume").glob("gpu-study-baseline-seed0-*.pt")
    resumed = ablation.run_gpu_study(data[0], data[1], profile("full", announce=False), output=tmp_path / "cut.json",
                                     **study)["runs"][0]
    assert f"Resuming from {left}: 2 of 3 epochs done" in capsys.readouterr().out and not left.exists()
    assert resumed["test_acc_by_tta"] == unbroken["test_acc_by_tta"]
    assert resumed["test_acc_curve"] == unbroken["test_acc_curve"]
    assert [(p["from_epoch"], p["to_epoch"]) for p in resumed["pieces"]] == [(1, 2), (3, 3)]
    assert {"command", "commit", "device", "torch", "date"} <= set(resumed["made_by"])


def test_a_gpu_study_run_claimed_by_another_process_is_skipped_not_trained_twice(data, tmp_path, monkeypatch,
                                                                                  isolated_cache, capsys):
    import fcntl

    from gapcourse.studies import ablation
    from gapcourse.config import profile

    tiny = replace(RECIPE, name="gpu-tiny")
    monkeypatch.setattr(ablation, "gpu_steps", lambda: [("baseline", "tiny baseline", tiny)])
    full = profile("full", announce=False)
    ident = {"step": "baseline", "seed": 0, "recipe": tiny.describe(), "profile": "full", "n_train": len(data[0]),
             "train_sha256": ablation.data_record("full", data[0])["train_sha256"]}
    lock = ablation.resume_file(ident).with_suffix(".pt.claim")
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:  # stands for another process training seed 0
        fcntl.flock(held, fcntl.LOCK_EX)
        monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained a run another process holds"))
        monkeypatch.setattr(ablation, "fit_resumable", lambda *a, **k: pytest.fail("trained a run another holds"))
        payload = ablation.run_gpu_study(data[0], data[1], full, device=torch.device("cpu"), seeds=(0,),
                                         output=tmp_path / "study.json", progress=False)
    assert payload["runs"] == [] and "another process is training this run" in capsys.readouterr().out


STRETCH_ONE = """
import os, sys, torch
from gapcourse import build_net
from gapcourse.studies import resume
from gapcourse.data import synthetic_cifar10
from gapcourse.device import seed_everything
from gapcourse.recipes import Recipe
real = resume.save_state
def save_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os._exit(3)  # as a killed process: no cleanup, nothing after the first epoch's save
resume.save_state = save_then_die
recipe = Recipe(**eval(sys.argv[2]))
generator = seed_everything(0)
resume.fit_resumable(build_net(width=recipe.width), synthetic_cifar10("train", per_class=6),
                     synthetic_cifar10("test", per_class=2), recipe, sys.argv[1], generator=generator,
                     epochs=recipe.epochs, progress=False)
"""


@pytest.mark.slow
def test_a_run_killed_in_one_process_goes_on_in_another_to_the_same_weights(data, tmp_path):
    import subprocess
    import sys
    from dataclasses import asdict

    recipe = replace(RECIPE, precision="bf16", channels_last=True)
    path = tmp_path / "run.pt"
    done = subprocess.run([sys.executable, "-c", STRETCH_ONE, str(path), repr(asdict(recipe))], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    assert torch.load(path, weights_only=True)["epoch"] == 1
    unbroken, _ = _run(data, recipe=recipe)
    resumed, history = _run(data, recipe=recipe, resume=path)
    assert all(torch.equal(a, b) for a, b in zip(unbroken.state_dict().values(), resumed.state_dict().values()))
    assert [(p["from_epoch"], p["to_epoch"]) for p in history.pieces] == [(1, 1), (2, 3)]


def test_a_change_to_any_number_in_the_file_is_refused(data, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    _cut_off(monkeypatch, data, path)
    state = torch.load(path, weights_only=True)
    state["trained"] += 100.0  # not a tensor: the digest covers it too
    torch.save(state, path)
    with pytest.raises(ResumeError, match="changed since fit wrote it"):
        _run(data, resume=path)


def test_another_test_split_or_an_already_trained_network_is_refused_with_what_to_do(data, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    _cut_off(monkeypatch, data, path)
    other_test = synthetic_cifar10("test", per_class=2, seed=5)
    with pytest.raises(ResumeError, match="differs in: test_data"):
        _run((data[0], other_test), resume=path)
    generator = seed_everything(0)
    model = build_net(width=RECIPE.width)
    fit(model, data[0], None, RECIPE, generator=generator, epochs=1, progress=False)  # the cell ran once already
    with pytest.raises(ResumeError, match="build both afresh"):
        fit_resumable(model, data[0], data[1], RECIPE, path, generator=generator, epochs=RECIPE.epochs,
                      progress=False)


def test_resuming_on_another_machine_warns_and_keeps_this_processs_optimizer_settings(data, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    _cut_off(monkeypatch, data, path)
    real_piece = resume_mod.piece
    monkeypatch.setattr(resume_mod, "piece", lambda *a: {**real_piece(*a), "threads": 99})
    import gapcourse.train as train_mod

    real_optimizer = train_mod.make_optimizer
    monkeypatch.setattr(train_mod, "make_optimizer", lambda *a, **k: _with_foreach_off(real_optimizer(*a, **k)))
    seen = {}
    real_step = train_mod.train_step
    monkeypatch.setattr(train_mod, "train_step", lambda *a, **k: (
        seen.setdefault("foreach", [g["foreach"] for g in a[5].param_groups]), real_step(*a, **k))[1])
    with pytest.warns(UserWarning, match=r"differs from the one before \(threads: \d+ → 99\).*no longer bit-id"):
        _run(data, resume=path)
    assert seen["foreach"] and all(f is False for f in seen["foreach"])  # not the file's foreach=None


def _with_foreach_off(optimizer):
    for group in optimizer.param_groups:
        group["foreach"] = False
    return optimizer


def test_the_gpu_study_steps_are_checked_before_any_data_is_loaded(monkeypatch, capsys):
    from gapcourse.studies import ablation
    from gapcourse import data as data_mod
    from gapcourse.__main__ import GPU_STUDY_STEPS, main

    assert GPU_STUDY_STEPS == tuple(key for key, _, _ in ablation.gpu_steps())
    monkeypatch.setattr(data_mod, "load_cifar10", lambda *a, **k: pytest.fail("loaded data before refusing"))
    with pytest.raises(SystemExit) as stop:
        main(["ablate", "--preset", "gpu", "--only", "cutout_epochs"])  # the step's old name
    assert stop.value.code == 2 and "invalid choice: 'cutout_epochs'" in capsys.readouterr().err
    assert main(["ablate", "--seeds", "3"]) == 2  # --seeds without --preset gpu did nothing before
    assert "add --preset gpu" in capsys.readouterr().err


def _no_training(monkeypatch):
    import gapcourse.train as train_mod

    monkeypatch.setattr(train_mod, "train_step", lambda *a, **k: pytest.fail("trained before refusing"))


def test_a_resume_file_in_use_or_in_an_unwritable_place_is_refused_before_training(data, tmp_path, monkeypatch):
    import fcntl

    _no_training(monkeypatch)
    path = tmp_path / "run.pt"
    with open(str(path) + ".lock", "w") as held:  # another fit (here or in another process) is using it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ResumeError, match="in use by another training run.*overwrite each other"):
            _run(data, resume=path)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(ResumeError, match="cannot be created or written.*nothing was trained"):
        _run(data, resume=tmp_path / "blocker" / "run.pt")


def test_a_resume_path_with_a_tilde_is_in_the_home_folder(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    _run(data, recipe=replace(RECIPE, epochs=1), resume="~/run.pt")
    assert (tmp_path / "home" / "run.pt").is_file() and not (tmp_path / "~").exists()


def test_a_run_started_in_another_precision_says_so(data, tmp_path, monkeypatch):
    from gapcourse import recipes
    from gapcourse.recipes import Precision

    recipe = replace(RECIPE, precision="auto")  # each machine picks its own
    monkeypatch.setattr(recipes, "native_precision", lambda *a: Precision("fp32", "this machine"))
    _cut_off(monkeypatch, data, tmp_path / "run.pt", recipe=recipe)
    monkeypatch.setattr(recipes, "native_precision", lambda *a: Precision("bf16", "a machine with bf16"))
    with pytest.raises(ResumeError, match="trained in fp32, and this machine would go on in bf16.*left as it is"):
        _run(data, recipe=recipe, resume=tmp_path / "run.pt")


def test_the_study_names_a_saved_state_it_cannot_use_and_keeps_a_trained_run_when_results_fail(
        data, tmp_path, monkeypatch, isolated_cache, capsys):
    from gapcourse.studies import ablation
    from gapcourse.config import profile
    from gapcourse.outputs import ResultsError

    tiny = replace(RECIPE, name="gpu-tiny", epochs=1)
    monkeypatch.setattr(ablation, "gpu_steps", lambda: [("baseline", "tiny baseline", tiny)])
    stranger = isolated_cache / "resume" / "gpu-study-baseline-seed0-000000000000.pt"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"a state from a machine with another precision")

    def results_fail(*a, **k):
        raise ResultsError("results.json cannot be written (test).")

    from gapcourse.studies import runner

    monkeypatch.setattr(runner, "write_results", results_fail)  # the one place every study writes its results
    with pytest.raises(ResultsError, match=r"The trained run is kept in .*\.pt: once the results file is fixed"):
        ablation.run_gpu_study(data[0], data[1], profile("full", announce=False), device=torch.device("cpu"),
                               seeds=(0,), output=tmp_path / "study.json", progress=False)
    out = capsys.readouterr().out
    assert f"note: {stranger} holds a saved state of this step and seed" in out and stranger.exists()
    (kept,) = [p for p in stranger.parent.glob("gpu-study-*.pt") if p != stranger]
    assert torch.load(kept, weights_only=True)["epoch"] == 1  # the trained run is still there


def test_the_gpu_study_trains_every_seed_of_the_steps_named_in_only(monkeypatch, tmp_path):
    """--only baseline --seeds 1 trains the baseline's seed 1 (the preset's second seed); without --only the steps
    before the candidate keep seed 0 and the candidate takes every seed; --only without --seeds keeps the runs the
    whole study would train for the named steps, so a Made-by command repeated trains what it trained."""
    from gapcourse.studies import ablation
    from gapcourse.__main__ import main

    from types import SimpleNamespace

    trained = []

    def train_and_measure(key, what, recipe, seed, *a, **k):  # what is trained is tested, not training
        trained.append((key, seed))
        history = SimpleNamespace(epoch=[1], train_seconds=1.0, test_acc=[0.5], train_acc=[0.5], pieces=[])
        return history, {"none": 0.5, "flip": 0.5, "flip_shift": 0.5}

    monkeypatch.setattr(ablation, "_train_and_measure", train_and_measure)
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setenv("GAPCOURSE_CACHE", str(tmp_path / "cache"))
    out = lambda name: ["--profile", "fast", "--output", str(tmp_path / name)]  # noqa: E731 (one file per command)
    assert main(["ablate", "--preset", "gpu", "--only", "baseline", "--seeds", "1", *out("a.json")]) == 0
    assert trained == [("baseline", 1)]
    trained.clear()
    assert main(["ablate", "--preset", "gpu", "--only", "cutout", "candidate", "--seeds", "2", "3",
                 *out("b.json")]) == 0
    assert trained == [("cutout", 2), ("cutout", 3), ("candidate", 2), ("candidate", 3)]
    trained.clear()
    assert main(["ablate", "--preset", "gpu", "--seeds", "4", *out("c.json")]) == 0
    assert trained == [("baseline", 0), ("cutout", 0), ("candidate", 4)]
    trained.clear()  # --only without --seeds: the runs the whole study trains for those steps (the Made-by commands)
    assert main(["ablate", "--preset", "gpu", "--only", "baseline", "candidate", *out("d.json")]) == 0
    assert trained == [("baseline", 0), ("candidate", 0), ("candidate", 1)]


def test_ablate_says_when_nothing_new_was_written(monkeypatch, capsys, tmp_path):
    from gapcourse.studies import ablation
    from gapcourse.__main__ import main

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(ablation, "run_gpu_study", lambda *a, **k: {"runs": []})
    assert main(["ablate", "--preset", "gpu", "--profile", "fast", "--output", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "nothing new written to" in out and "written:" not in out
