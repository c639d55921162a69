"""A PNG contact sheet of a pair: what a reader checks before trusting a simulated cohort.

One row per axial slice through a new lesion (largest cross-section of each
component, biggest first), four columns: baseline, follow-up as acquired,
follow-up registered with the ground-truth transform minus baseline (both divided
by their brain medians), and the registered follow-up with the ground-truth
outline. Uses matplotlib's Agg backend (no display).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError


def _read(path: Path) -> sitk.Image:
    if not Path(path).is_file():
        raise InputError(f"Pair file {path} is missing.", "Regenerate the cohort with make-cohort.")
    return sitk.ReadImage(str(path))


def lesion_slices(mask: np.ndarray, max_rows: int) -> list[int]:
    """Axial indices k through the largest cross-section of each new-lesion component, biggest first."""
    lab, n = ndimage.label(mask > 0, structure=np.ones((3, 3, 3)))
    if n == 0:
        return []
    sizes = ndimage.sum_labels(mask > 0, lab, index=np.arange(1, n + 1))
    picks: list[int] = []
    for comp in np.argsort(-sizes, kind="stable") + 1:
        area = (lab == comp).sum(axis=(1, 2))
        k = int(np.argmax(area))
        if all(abs(k - p) > 1 for p in picks):
            picks.append(k)
        if len(picks) == max_rows:
            break
    return picks


def render_contact_sheet(files: dict[str, Path], out_png: str | Path, *, title: str = "",
                         max_rows: int = 4) -> Path:
    """Draw the sheet for a pair given its file paths (``manifest.pair_files``); returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    base_img = _read(files["baseline"])
    fu_img = _read(files["followup"])
    truth = sitk.ReadTransform(str(files["registration_truth"])) if "registration_truth" in files \
        and Path(files["registration_truth"]).is_file() else sitk.Transform()
    fu_reg = sitk.Resample(sitk.Cast(fu_img, sitk.sitkFloat32), base_img, truth, sitk.sitkLinear, 0.0)
    base = sitk.GetArrayFromImage(base_img).astype(np.float32)
    fu_raw = sitk.GetArrayFromImage(fu_img).astype(np.float32)
    fu = sitk.GetArrayFromImage(fu_reg)
    mask = sitk.GetArrayFromImage(_read(files["new_lesions"]))
    brain = sitk.GetArrayFromImage(_read(files["brain_mask"])) > 0 if "brain_mask" in files else base > 0
    nb, nf = float(np.median(base[brain])), float(np.median(fu[brain]))
    nr = float(np.median(fu_raw[brain]))
    rows = lesion_slices(mask, max_rows)
    no_lesion = not rows
    if no_lesion:
        zs = np.flatnonzero(brain.any(axis=(1, 2)))
        rows = [int(v) for v in np.linspace(zs[0], zs[-1], max_rows + 2)[1:-1]]
    lo, hi = (float(v) for v in np.percentile(base[brain] / nb, (0.5, 99.9)))
    fig, axes = plt.subplots(len(rows), 4, figsize=(4 * 2.6, len(rows) * 2.9), squeeze=False)
    heads = ("baseline", "follow-up (as acquired)", "registered FU - baseline", "FU + new-lesion truth")
    for r, k in enumerate(rows):
        panels = (base[k] / nb, fu_raw[k] / nr, fu[k] / nf - base[k] / nb, fu[k] / nf)
        for c, img in enumerate(panels):
            ax = axes[r, c]
            if c == 2:
                ax.imshow(img, cmap="gray", vmin=-0.6, vmax=0.6, origin="lower", interpolation="nearest")
            else:
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
            if c == 3 and mask[k].any():
                ax.contour(mask[k], levels=[0.5], colors="red", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heads[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"axial k={k}", fontsize=8)
    fig.suptitle(title + ("  (no new lesion: evenly spaced slices)" if no_lesion else ""), fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic.atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=90, format="png", metadata={"Software": None})
    plt.close(fig)
    return out_png


def pair_contact_sheet(manifest: dict, pair: dict, out_png: str | Path | None = None, max_rows: int = 4) -> Path:
    """Contact sheet of a manifest pair (default: ``contact_sheet.png`` next to its baseline)."""
    from LongitudinalALLib.cohort.manifest import pair_files

    files = pair_files(manifest, pair)
    out_png = out_png or files["baseline"].parent / "contact_sheet.png"
    c = pair["counts"]
    title = (f"{pair['pair_id']} ({pair['anatomy']}, {pair['split']}): {c['n_new']} new, "
             f"{c['n_enlarging']} enlarging, {c['n_existing']} pre-existing lesions")
    return render_contact_sheet(files, out_png, title=title, max_rows=max_rows)
