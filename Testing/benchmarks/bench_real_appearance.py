"""What real lesion change looks like, measured on open_ms_data (Lesjak et al., Neuroinformatics 2016, CC-BY).

The simulator (``cohort/real_stats.py``) is set from these derived numbers; the data stay outside the
project (read from ``../shared/data/open_ms_data``; one skip line when absent). Measured:

* shapes: the 26-connected components of the 16 change masks in ``change_masks/`` (never the two
  test patients'): volume (mm^3), equivalent diameter, slices spanned, elongation (sqrt of the largest
  over the smallest in-plane principal variance), components per patient;
* contrast on the two shared pairs, on the dataset's ``gt`` grid with its transforms, each visit over
  its brain median: inside new-or-enlarging and shrinking components at baseline and follow-up, against
  a 2-voxel ring of surrounding tissue (the lesions sit in white matter); normal tissue between the two
  protocols: brain quantiles of both visits outside the change (dilated);
* what the model sees: after the product's ``prepare_pair`` (baseline grid, histogram-matched follow-up),
  the mean difference inside new and shrinking lesions and mean |difference| over the rest of the brain;
  with ``--sim DIR`` the same on prepared simulator pairs (``train_bundled.py`` cache) as the peer.

Run:  python Testing/benchmarks/bench_real_appearance.py [--sim /tmp/mt3/prepared]
JSON: Testing/benchmarks/results/real_appearance.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_pairs  # noqa: E402
from bench_common import describe_machine, write_results  # noqa: E402

sys.path.insert(0, str(real_pairs.ROOT / "LongitudinalAL"))
QUANTILES = (5, 10, 25, 50, 75, 90, 95, 99)


def component_shapes(mask: np.ndarray, spacing_xyz) -> list[dict]:
    """Per 26-connected component: volume_mm3, diameter_mm (equivalent sphere), slices, elongation."""
    sp = np.asarray(spacing_xyz, float)[::-1]  # (k, j, i) mm
    lab, n = ndimage.label(mask, real_pairs.STRUCT26)
    out = []
    for i, box in enumerate(ndimage.find_objects(lab), start=1):
        idx = np.argwhere(lab[box] == i)
        vol = float(len(idx) * sp.prod())
        xy = idx[:, 1:] * sp[1:]
        ev = np.sort(np.linalg.eigvalsh(np.cov(xy.T) + np.eye(2) * sp[1:].mean() ** 2 / 12)) if len(idx) > 2 else None
        out.append({"volume_mm3": vol, "diameter_mm": float((6 * vol / np.pi) ** (1 / 3)),
                    "slices": int(box[0].stop - box[0].start),
                    "elongation": float(np.sqrt(ev[1] / ev[0])) if ev is not None else 1.0})
    return out


def quantiles(values, qs=(10, 25, 50, 75, 90)) -> dict:
    v = np.asarray(values, float)
    if v.size == 0:
        return {"n": 0}
    return {f"p{q}": float(np.percentile(v, q)) for q in qs} | {"mean": float(v.mean()), "n": int(v.size)}


def shape_bank() -> dict:
    files = sorted((real_pairs.DATA / "change_masks").glob("patient*_gt.nii.gz"))
    comps, per_patient = [], {}
    for f in files:
        img = sitk.ReadImage(str(f))
        c = component_shapes(sitk.GetArrayViewFromImage(img) > 0, img.GetSpacing())
        per_patient[f.name.split("_")[0]] = {"components": len(c), "spacing_mm": list(img.GetSpacing())}
        comps += c
    vol = [c["volume_mm3"] for c in comps]
    return {"files": len(files), "per_patient": per_patient, "components": len(comps),
            "components_per_patient": quantiles([p["components"] for p in per_patient.values()]),
            "volume_mm3": quantiles(vol), "diameter_mm": quantiles([c["diameter_mm"] for c in comps]),
            "slices": quantiles([c["slices"] for c in comps]),
            "elongation": quantiles([c["elongation"] for c in comps]),
            "share_single_slice": float(np.mean([c["slices"] == 1 for c in comps])),
            "volume_histogram_mm3": np.histogram(np.log10(vol), bins=np.arange(0.5, 4.01, 0.25))[0].tolist(),
            "volume_histogram_log10_edges": np.arange(0.5, 4.01, 0.25).tolist()}


def ring_contrast(img: np.ndarray, lab: np.ndarray, ids, exclude: np.ndarray, brain: np.ndarray) -> list[float]:
    """Per component: mean inside over the mean of an in-plane ring 2-3 voxels out (brain, no change) - 1."""
    out = []
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    for i in ids:
        m = lab == i
        ring = ndimage.binary_dilation(m, st, iterations=3) & ~ndimage.binary_dilation(m, st, iterations=1)
        ring &= ~exclude & brain
        if ring.sum() >= 5:
            out.append(float(img[m].mean() / max(img[ring].mean(), 1e-6) - 1.0))
    return out


def contrast(patient: str) -> dict:
    d = real_pairs.on_gt_grid(patient)
    new, shrink, n_new, n_shrink = real_pairs.split_change(d)
    change = ndimage.binary_dilation(d["gt"], real_pairs.STRUCT26, iterations=2)
    out = {"n_new_or_enlarging": n_new, "n_shrinking": n_shrink}
    for name, m in (("new", new), ("shrinking", shrink)):
        lab, n = ndimage.label(m, real_pairs.STRUCT26)
        out[name] = {f"study{k}_ring_contrast": quantiles(ring_contrast(d[f"study{k}"], lab, range(1, n + 1),
                                                                          d["gt"], d["brain"])) for k in (1, 2)}
        out[name] |= {f"study{k}_over_brain_median": float(d[f"study{k}"][m].mean()) for k in (1, 2)}
    normal = d["brain"] & ~change
    qa = [np.percentile(d[f"study{k}"][normal], QUANTILES) for k in (1, 2)]
    out["normal_tissue_quantiles"] = {"q": list(QUANTILES), "study1": qa[0].tolist(), "study2": qa[1].tolist(),
                                      "ratio_2_over_1": (qa[1] / qa[0]).tolist()}
    return out


def prepared_signal(d: dict) -> dict:
    """Mean difference (follow-up - baseline, normalised units) in new / shrinking lesions; |diff| elsewhere."""
    fg = d["foreground"] > 0
    diff = d["registered"].astype(np.float32) - d["baseline"].astype(np.float32)
    t = d["truth"] > 0
    s = d.get("shrinking", np.zeros_like(t)) > 0
    rest = fg & ~ndimage.binary_dilation(t | s, iterations=2)
    base_rest = d["baseline"][rest]
    out = {"mean_abs_diff_rest": float(np.abs(diff[rest]).mean()),
           "share_abs_diff_over_0.1": float((np.abs(diff[rest]) > 0.1).mean()),
           "brain_p50_baseline": float(np.median(base_rest)),
           "slice_mm": float(d["spacing"][2]), "inplane_mm": float(d["spacing"][0])}
    if t.any():
        out["new_mean_diff"] = float(diff[t].mean())
        lab, n = ndimage.label(t, real_pairs.STRUCT26)
        out["new_component_mean_diff"] = ndimage.mean(diff, lab, np.arange(1, n + 1)).tolist()
        out["new_followup_over_rest_median"] = float(d["registered"][t].mean() / np.median(base_rest))
    if s.any():
        out["shrinking_mean_diff"] = float(diff[s].mean())
    return out


def sim_signal(folder: Path, limit: int) -> dict:
    rows = []
    for p in sorted(folder.glob("*.npz"))[:limit]:
        with np.load(p) as z:
            d = {k: z[k] for k in ("baseline", "registered", "foreground", "truth", "spacing")}
        rows.append(prepared_signal(d) | {"pair": p.stem})
    comp = [v for r in rows for v in r.pop("new_component_mean_diff", [])]
    keys = ("mean_abs_diff_rest", "share_abs_diff_over_0.1", "new_mean_diff", "shrinking_mean_diff",
            "new_followup_over_rest_median")
    return {"folder": str(folder), "pairs": rows,
            "summary": {k: quantiles([r[k] for r in rows if k in r]) for k in keys if any(k in r for r in rows)}
            | {"new_component_mean_diff": quantiles(comp)}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="append", default=[], help="a folder of prepared simulator pairs (peer)")
    ap.add_argument("--sim-limit", type=int, default=40)
    ap.add_argument("--name", default="real_appearance")
    args = ap.parse_args(argv)
    if real_pairs.absent():
        return {}
    t0 = time.perf_counter()
    out = {"command": "python Testing/benchmarks/bench_real_appearance.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "data": real_pairs.CITATION, "machine": describe_machine(), "shape_bank": shape_bank(),
           "contrast": {}, "prepared": {}, "simulator": {}}
    print("shape bank", {k: out["shape_bank"][k] for k in ("components", "volume_mm3", "diameter_mm", "elongation",
                                                           "share_single_slice")}, flush=True)
    for p in real_pairs.PATIENTS:
        out["contrast"][p] = contrast(p)
        out["prepared"][p] = prepared_signal(real_pairs.prepared_real_pair(p))
        out["prepared"][p]["new_component_mean_diff"] = quantiles(out["prepared"][p]["new_component_mean_diff"])
        print(p, out["contrast"][p], out["prepared"][p], flush=True)
    for folder in args.sim:
        out["simulator"][folder] = sim_signal(Path(folder), args.sim_limit)
        print("simulator", folder, out["simulator"][folder]["summary"], flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.name, out)
    return out


if __name__ == "__main__":
    main()
