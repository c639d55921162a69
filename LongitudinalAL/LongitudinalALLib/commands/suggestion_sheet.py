"""PNG contact sheet of the top suggestions, for anyone without Slicer at hand.

One row per suggested slice: baseline, registered follow-up, difference and the
model's new-lesion probability, all in the model's canonical slice orientation
(anterior up, patient right on the left for axial).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError


def suggestion_title(s) -> str:
    """Row label of a suggestion (``active.suggestions.Suggestion``): rank, slice, score and why it was picked."""
    import textwrap

    title = f"#{s.rank} slice {s.slice_index}\nscore {s.score:.3g}"
    if s.reason:
        title += "\n" + textwrap.fill(s.reason, 22) + ("" if s.rule_score is None else f"\n({s.rule_score:.3g})")
    return title


def write_suggestion_sheet(path: str | Path, images: np.ndarray, probability: np.ndarray,
                           rows: Sequence[int], titles: Sequence[str], header: str = "") -> Path:
    """Draw ``rows`` of a case's slices.

    images: (N, 3, H, W) baseline, registered follow-up, difference (model grid).
    probability: (N, H, W) new-lesion probability on the same grid.
    rows: which slices (positions in N), best first; titles: one label per row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    if not rows:
        raise InputError("No suggestion to draw.", "Run `longitudinal-al suggest` first.")
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows)), squeeze=False)
    diff_scale = float(np.percentile(np.abs(images[:, 2]), 99.9)) or 1.0
    grey = dict(cmap="gray", vmin=0.0, vmax=float(np.percentile(images[:, :2], 99.5)) or 1.0)
    for r, (n, title) in enumerate(zip(rows, titles)):
        panels = [(images[n, 0], grey, "baseline"), (images[n, 1], grey, "follow-up (registered)"),
                  (images[n, 2], dict(cmap="coolwarm", vmin=-diff_scale, vmax=diff_scale), "difference"),
                  (probability[n], dict(cmap="magma", vmin=0.0, vmax=1.0), "P(new lesion)")]
        for c, (img, style, name) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
        axes[r, 0].set_ylabel(title, fontsize=8)
    if header:
        fig.suptitle(header, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path
