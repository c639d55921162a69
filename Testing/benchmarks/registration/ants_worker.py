"""Run ANTsPy's affine registration on one pair; used by bench_registration.py.

Runs under .venv-bench (antspyx pins old numpy/scipy, so it never enters the
product .venv). Usage: ants_worker.py FIXED MOVING OUT_TRANSFORM.mat -> prints JSON.
"""

import json
import shutil
import sys
import time

import ants


def main(fixed_path: str, moving_path: str, out_path: str) -> None:
    fixed = ants.image_read(fixed_path)
    moving = ants.image_read(moving_path)
    start = time.perf_counter()
    result = ants.registration(fixed=fixed, moving=moving, type_of_transform="Affine", random_seed=1)
    seconds = time.perf_counter() - start
    shutil.copy(result["fwdtransforms"][0], out_path)  # fixed point -> moving point, like ours
    print(json.dumps({"seconds": seconds, "ants_version": ants.__version__}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
