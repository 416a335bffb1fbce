"""The plots the notebooks show. Each returns its matplotlib Figure (the notebook displays it).

Introduced in: :func:`show_images`, :func:`show_feature_maps`, :func:`show_map_and_average` (notebook 01);
:func:`show_pooling_windows`, :func:`plot_output_sizes` (notebook 02); :func:`plot_history`, :func:`plot_confusion`,
:func:`plot_per_class`, :func:`show_predictions`, :func:`plot_budget_curve` (notebook 03); :func:`show_heatmaps`
(notebook 05).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data import CLASSES


def _expect(tensor, shape: str, what: str, *, channels: int | None = None) -> torch.Tensor:
    """Check a plotting input's rank (and channel count) against ``shape`` (e.g. ``"N×3×H×W"``); say what to do."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} expects a torch.Tensor of shape {shape}, got {type(tensor).__name__}.")
    rank = len(shape.split("×"))
    if tensor.ndim != rank or (channels is not None and tensor.shape[1] != channels):
        hint = ""
        if tensor.ndim == rank - 1:
            hint = " For a single item use .unsqueeze(0)."
        elif rank == 4 and tensor.ndim == 4 and tensor.shape[-1] == 3:
            hint = " Channels last? Use .permute(0, 3, 1, 2)."
        raise ValueError(f"{what} expects {shape}, got shape {tuple(tensor.shape)}.{hint}")
    return tensor


def _as_hwc(image: torch.Tensor) -> np.ndarray:
    """3×H×W uint8 or 0..1 float → H×W×3 array for imshow."""
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        image = image.float() / 255
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


MAX_COLUMNS = 8  # wider grids get shrunk to unreadable text in a notebook's output area (about 11 inches wide)


def _grid(n: int, ncols: int, cell_w: float, cell_h: float) -> tuple[plt.Figure, list]:
    """A figure of ceil(n / ncols) × ncols axes (at most :data:`MAX_COLUMNS` columns), all switched off; returns the
    figure and the first n axes. Constrained layout keeps each title clear of the row above."""
    ncols = max(1, min(ncols, MAX_COLUMNS, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_w * ncols, cell_h * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def show_images(images: torch.Tensor, labels: Sequence[int] | torch.Tensor, *, classes: Sequence[str] = CLASSES,
                predictions: Sequence[int] | torch.Tensor | None = None, ncols: int = 8,
                title: str | None = None) -> plt.Figure:
    """A grid of images with their class names; with ``predictions``, mistakes are titled in red."""
    _expect(images, "N×3×H×W", "show_images", channels=3)
    if len(labels) != len(images):
        raise ValueError(f"show_images got {len(images)} images but {len(labels)} labels; give one label per image.")
    fig, axes = _grid(len(images), ncols, 1.4, 1.75 if predictions is None else 1.95)
    for i, ax in enumerate(axes):
        ax.imshow(_as_hwc(images[i]), interpolation="nearest")
        true = classes[int(labels[i])]
        if predictions is None:
            ax.set_title(true, fontsize=9)
        else:
            guess = classes[int(predictions[i])]
            ok = guess == true
            ax.set_title(guess if ok else f"{guess}\n(is {true})", fontsize=8.5, color="black" if ok else "crimson")
    if title:
        fig.suptitle(title)
    return fig


def show_feature_maps(maps: torch.Tensor, *, n: int = 16, ncols: int = 8, title: str | None = None) -> plt.Figure:
    """The first ``n`` channels of one image's C×H×W activations, each as a heat map with its channel index."""
    _expect(maps, "C×H×W", "show_feature_maps (one image's maps; index a batch with maps[0])")
    maps = maps.detach().cpu().float()
    n = min(n, maps.shape[0])
    fig, axes = _grid(n, ncols, 1.5, 1.6)
    for i, ax in enumerate(axes):
        ax.imshow(maps[i].numpy(), cmap="viridis")
        ax.set_title(f"ch {i}", fontsize=8)
    fig.suptitle(title or f"{n} of {maps.shape[0]} feature maps, each {maps.shape[1]}×{maps.shape[2]}")
    return fig


def show_map_and_average(feature_map: torch.Tensor, *, title: str = "") -> plt.Figure:
    """One H×W feature map beside the single number GAP keeps of it, drawn on the same colour scale."""
    _expect(feature_map, "H×W", "show_map_and_average (one map: index it as maps[image, channel])")
    fm = feature_map.detach().cpu().float()
    avg = fm.mean().item()
    lo, hi = fm.min().item(), fm.max().item()
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3.2))
    im = left.imshow(fm.numpy(), cmap="viridis", vmin=lo, vmax=hi)
    left.set_title(f"feature map {fm.shape[0]}×{fm.shape[1]}")
    left.set_xlabel("column")
    left.set_ylabel("row")
    right.imshow(np.full((1, 1), avg), cmap="viridis", vmin=lo, vmax=hi)
    right.set_title(f"global average = {avg:.3f}")
    right.set_xticks([])
    right.set_yticks([])
    fig.colorbar(im, ax=[left, right], shrink=0.8, label="activation")
    if title:
        fig.suptitle(title)
    return fig


def plot_history(history, *, title: str = "") -> plt.Figure:
    """Loss per step and accuracy per epoch (train and, if measured, test)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = np.arange(1, len(history.step_loss) + 1)
    ax_loss.plot(steps, history.step_loss, lw=0.8, label="train (per step)")
    if history.test_loss:
        per_epoch = len(history.step_loss) / max(1, len(history.epoch))
        ax_loss.plot(np.array(history.epoch) * per_epoch, history.test_loss, "o-", label="test (per epoch)")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    ax_acc.plot(history.epoch, [100 * a for a in history.train_acc], "o-", label="train (augmented)")
    if history.test_acc:
        ax_acc.plot(history.epoch, [100 * a for a in history.test_acc], "o-", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(matrix: torch.Tensor, *, classes: Sequence[str] = CLASSES) -> plt.Figure:
    """Confusion matrix as a heat map, rows normalised to the share of each true class."""
    _expect(matrix, "K×K", "plot_confusion")
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(classes):
        raise ValueError(f"plot_confusion expects a {len(classes)}×{len(classes)} matrix (one row and column per "
                         f"class), got {tuple(matrix.shape)}.")
    m = matrix.float()
    share = m / m.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if share[i, j] >= 0.01:
                ax.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="share of the true class")
    ax.set_title("confusion matrix (% of each row)")
    fig.tight_layout()
    return fig


def plot_per_class(accuracies: Sequence[float], *, classes: Sequence[str] = CLASSES) -> plt.Figure:
    """Horizontal bars of per-class accuracy, with the mean marked."""
    acc = np.array(accuracies) * 100
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh(range(len(classes)), acc, color="steelblue")
    ax.axvline(acc.mean(), color="crimson", ls="--", label=f"mean {acc.mean():.1f}%")
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def show_predictions(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, *,
                     classes: Sequence[str] = CLASSES, n: int = 24, ncols: int = 8, seed: int = 0) -> plt.Figure:
    """A random half correct predictions, half mistakes (as many as there are), mistakes titled in red."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    right = order[predictions[order] == labels[order]]
    wrong = order[predictions[order] != labels[order]]
    k = min(len(wrong), n // 2)
    pick = torch.cat([right[: n - k], wrong[:k]])
    return show_images(images[pick], labels[pick], classes=classes, predictions=predictions[pick], ncols=ncols,
                       title=f"{n - k} correct, {k} mistakes (red: predicted, true class in brackets)")


def show_pooling_windows(height: int, width: int, row_windows: Sequence[tuple[int, int]],
                         col_windows: Sequence[tuple[int, int]], *, title: str = "") -> plt.Figure:
    """One small panel per output cell (i, j): the H×W input grid with that cell's window shaded.

    ``row_windows[i] = (start, end)`` covers input rows ``start..end-1``; likewise ``col_windows``. Cells shared by
    neighbouring windows show up as shaded in more than one panel.
    """
    out_h, out_w = len(row_windows), len(col_windows)
    coverage = np.zeros((height, width), dtype=int)
    for r0, r1 in row_windows:
        for c0, c1 in col_windows:
            coverage[r0:r1, c0:c1] += 1
    fig, axes = plt.subplots(out_h, out_w + 1, figsize=(1.9 * (out_w + 1), 1.9 * out_h), squeeze=False)
    for i, (r0, r1) in enumerate(row_windows):
        for j, (c0, c1) in enumerate(col_windows):
            ax = axes[i, j]
            mask = np.zeros((height, width))
            mask[r0:r1, c0:c1] = 1
            ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.4)
            ax.set_xticks(np.arange(-0.5, width), minor=True)
            ax.set_yticks(np.arange(-0.5, height), minor=True)
            ax.grid(which="minor", color="grey", lw=0.6)
            ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
            ax.set_title(f"out[{i},{j}]: rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}", fontsize=7)
    for i in range(out_h):
        axes[i, -1].axis("off")
    ax = axes[0, -1]
    ax.axis("on")
    ax.imshow(coverage, cmap="Oranges", vmin=0, vmax=coverage.max())
    for (r, c), k in np.ndenumerate(coverage):
        ax.text(c, r, str(k), ha="center", va="center", fontsize=7)
    ax.set_title("windows per input cell", fontsize=7)
    ax.tick_params(length=0, labelbottom=False, labelleft=False)
    fig.suptitle(title or f"adaptive pooling {height}×{width} → {out_h}×{out_w}: each output cell's window")
    fig.tight_layout()
    return fig


def plot_output_sizes(input_sides: Sequence[int], outputs: dict[str, Sequence[int]]) -> plt.Figure:
    """Output side against input side for several pooling layers (one line each)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for (name, sides), marker, style in zip(outputs.items(), "osd^v", ["-", "--", "-", ":", "-."]):
        ax.plot(input_sides, sides, marker=marker, ls=style, label=name)
    ax.set_xlabel("input side (px)")
    ax.set_ylabel("output side (px)")
    ax.set_title("Fixed windows scale with the input; adaptive pooling does not")
    ax.legend()
    fig.tight_layout()
    return fig


def _upsample(heat: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    heat = heat.detach().cpu().float()[None, None]
    return torch.nn.functional.interpolate(heat, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def show_heatmaps(images: torch.Tensor, heats: torch.Tensor, *, titles: Sequence[str] | None = None,
                  ncols: int = 6, boxes: Sequence[tuple[int, int, int]] | None = None,
                  peaks: Sequence[tuple[float, float]] | None = None, title: str = "",
                  shared_scale: bool = True, label: str = "class evidence (map value)") -> plt.Figure:
    """Each image with its coarse heat map (h×w) upsampled bilinearly and laid over it.

    ``images`` are uint8 or normalised float N×3×H×W; ``boxes`` ``(top, left, side)`` draw a square (e.g. where an
    object was pasted); ``peaks`` ``(row, col)`` in image pixels mark each map's maximum. With ``shared_scale``
    (the default) every panel uses one colour scale, shown by a colour bar labelled ``label``, so colours can be
    compared across panels; without it each map is stretched to its own range (red = its own maximum).
    """
    from .data import denormalize

    _expect(images, "N×3×H×W", "show_heatmaps", channels=3)
    _expect(heats, "N×h×w", "show_heatmaps (heats: one map per image)")
    if len(heats) != len(images):
        raise ValueError(f"show_heatmaps got {len(images)} images but {len(heats)} heat maps; give one per image.")
    imgs = images if images.dtype == torch.uint8 else denormalize(images.detach().cpu().float())
    fig, axes = _grid(len(imgs), ncols, 2.1, 2.5)
    lo, hi = float(heats.min()), float(heats.max())
    shown = None
    for i, ax in enumerate(axes):
        img = _as_hwc(imgs[i])
        heat = _upsample(heats[i], img.shape[:2])
        ax.imshow(img, interpolation="nearest")
        shown = ax.imshow(heat, cmap="jet", alpha=0.45, vmin=lo if shared_scale else None,
                          vmax=hi if shared_scale else None)
        if boxes is not None:
            top, left, side = boxes[i]
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), side, side, fill=False, ec="white", lw=1.5))
        if peaks is not None:
            ax.plot(peaks[i][1], peaks[i][0], "w+", ms=12, mew=2)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    if shared_scale and shown is not None:
        fig.colorbar(shown, ax=list(np.ravel(fig.axes)), shrink=0.8, label=label)
    return fig


def plot_budget_curve(payload: dict, *, highlight: float | None = None,
                      yours: tuple[float, float] | None = None) -> plt.Figure:
    """Notebook 03: test accuracy against the training budget, one line per condition (the rows of
    ``gapcourse/results/budget_table.json``, see :mod:`gapcourse.studies.budget_table`), the planned epochs written at each
    point; where several seeds ran, the point is their mean and the bar their range. ``yours`` = (budget in seconds,
    test accuracy in [0, 1]) adds the learner's own run as a star. The x axis is the budget, not the time a run took. ``highlight`` (seconds) draws a vertical line at a budget, e.g. the notebook's own."""
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not rows:
        raise ValueError("plot_budget_curve expects the budget table's results (a dict with a non-empty 'rows' list), "
                         "e.g. gapcourse.measured.load_table().")
    from .measured import CONDITIONS
    from .measured import width_of as width  # rows of networks of different widths are separate lines, never averaged

    widths = sorted({width(r) for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = [(c, w) for w in widths for c in CONDITIONS if any(r["condition"] == c and width(r) == w for r in rows)]
    for condition, w in lines:
        mine = [r for r in rows if r["condition"] == condition and width(r) == w]
        budgets = sorted({r["budget_s"] for r in mine})
        runs = [[r for r in mine if r["budget_s"] == b] for b in budgets]
        minutes = [b / 60 for b in budgets]
        acc = [100 * sum(r["test_acc"] for r in rs) / len(rs) for rs in runs]  # the mean where several seeds ran
        low = [a - 100 * min(r["test_acc"] for r in rs) for a, rs in zip(acc, runs)]
        high = [100 * max(r["test_acc"] for r in rs) - a for a, rs in zip(acc, runs)]
        label = CONDITIONS[condition] + (f", width {w}" if len(widths) > 1 else "")
        ax.errorbar(minutes, acc, yerr=[low, high], fmt="o-", capsize=3, label=label)
        for x, y, rs in zip(minutes, acc, runs):
            epochs = sorted({r["epochs"] for r in rs})
            seeds = f", {len(rs)} seeds" if len(rs) > 1 else ""
            ax.annotate(f"{'/'.join(map(str, epochs))} ep{seeds}", (x, y), textcoords="offset points",
                        xytext=(4, -10), fontsize=8)
    if highlight is not None:
        ax.axvline(highlight / 60, color="grey", ls="--", lw=1, label=f"budget {highlight / 60:g} min")
    if yours is not None:
        try:
            budget_s, accuracy = float(yours[0]), float(yours[1])
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"yours must be (budget in seconds, test accuracy between 0 and 1), e.g. (240, 0.84); "
                             f"got {yours!r}") from None
        if not (budget_s > 0 and 0 <= accuracy <= 1):
            raise ValueError(f"yours must be (budget in seconds > 0, test accuracy between 0 and 1), e.g. (240, 0.84); "
                             f"got {yours!r}" + (" (an accuracy in %? divide by 100)" if 1 < accuracy <= 100 else ""))
        ax.plot([budget_s / 60], [100 * accuracy], "*", color="black", markersize=12, alpha=0.8, zorder=5,
                label="your run")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["budget_s"] / 60 for r in rows})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel("training budget (minutes, whole fit call)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("What the cpu presets reach in a given time (one line per width)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
