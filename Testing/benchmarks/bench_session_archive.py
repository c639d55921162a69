"""Cost of keeping the session archive current after every commit (accept, retrain) in the scene.

Builds a session the size the GUI defaults give (MNI T1 at 1 mm, axial, 256x256 slices, every
slice pooled; ``--rounds`` checkpoints of the bundled model's size), then times, median of
``--repeats``: the product's pack (stored npz/safetensors + deflated rest), the previous
deflate-everything zip (reference), the folder digest used before reusing a folder, base64 +
``vtkMRMLTextNode.SetText`` (what ``pack_session`` adds), and the safe extraction. Prints figures
and writes ``results/session_archive.json``.

    .venv/bin/python Testing/benchmarks/bench_session_archive.py [--tiny]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "tests"))


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _deflate_everything(directory: Path) -> bytes:
    """The previous packer: every file deflated (reference)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(directory).as_posix())
    return buf.getvalue()


def build_session(work: Path, spacing_mm: float, size: int, rounds: int) -> None:
    import scene_testdata

    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.imaging.pairing import pair_slices

    baseline = scene_testdata.mni_t1(spacing_mm)
    followup = baseline + 0.0
    mask = sitk.Cast(baseline > float(np.percentile(sitk.GetArrayViewFromImage(baseline), 60)), sitk.sitkUInt8)
    case = pair_slices(baseline, followup, mask, "case", axis="axial", size=size, spacing_mm=spacing_mm)
    session = SessionStore.create(work / "session", [case], init_weights="scratch")
    rng = np.random.default_rng(0)
    for i in range(0, len(case.provenance), 9):  # some accepted labels
        session.add_label("case", case.provenance[i].slice_index, np.zeros(case.images.shape[2:], np.uint8))
    for r in range(1, rounds + 1):  # checkpoint-sized weights (6.6 MB, float32 noise)
        (work / "session" / "checkpoints").mkdir(exist_ok=True)
        (work / "session" / "checkpoints" / f"round_{r}.safetensors").write_bytes(
            rng.standard_normal(6_600_000 // 4).astype(np.float32).tobytes())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="3 mm, 64 px, 1 round: seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    spacing, size, rounds = (3.0, 64, 1) if args.tiny else (1.0, 256, args.rounds)

    import slicer

    from LongitudinalALLib.scene import archive

    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        work = Path(tmp) / "session-001"
        build_session(work, spacing, size, rounds)
        on_disk = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
        data, _ = archive.pack(work)
        node = slicer.vtkMRMLTextNode()
        result = {
            "config": {"spacing_mm": spacing, "size": size, "rounds": rounds, "repeats": args.repeats},
            "session_bytes": on_disk, "archive_bytes": len(data),
            "pack_s": _median_s(lambda: archive.pack(work), args.repeats),
            "deflate_everything_s (previous packer)": _median_s(lambda: _deflate_everything(work), args.repeats),
            "digest_s": _median_s(lambda: archive.folder_digest(work), args.repeats),
            "base64_settext_s": _median_s(lambda: node.SetText(base64.b64encode(data).decode("ascii")),
                                          args.repeats),
            "extract_s": _median_s(lambda: archive.extract(data, Path(tmp) / "restored"), args.repeats),
        }
    for key, value in result.items():
        print(f"{key:40s} {value}")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("session_archive_tiny.json" if args.tiny else "session_archive.json")).write_text(
        json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
