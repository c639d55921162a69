"""The panel's parameter node wrapper: input volumes plus the ``run`` pack (the run options' one home).

Why here: Slicer's ``parameterNodeWrapper`` exists only inside Slicer (it imports
Qt), so only the module file imports this module. The pack's fields, defaults,
ranges and choices are :data:`.run_options.FIELDS` (a test checks them one by one);
the Logic reads the values the pack stores through :func:`.run_options.read`.
"""

from __future__ import annotations

from typing import Annotated

from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper, parameterPack

from LongitudinalALLib.scene import panel_options, run_options
from LongitudinalALLib.scene.persistence import default_work_root

#: compute devices offered (best first), found without importing torch (a worker's cached answer or a probe)
DEVICES = panel_options.available_devices(default_work_root())
_F = {f.key: f for f in run_options.FIELDS}


@parameterPack
class RunPack:
    """What the user chooses for a run; Run, Retrain and Re-pair read it as it is when they start."""

    spacingMm: Annotated[float, WithinRange(*panel_options.SPACING_MM)] = _F["spacingMm"].default
    size: Annotated[int, WithinRange(*panel_options.SIZE_PX)] = _F["size"].default
    strategy: Annotated[str, Choice(list(panel_options.STRATEGIES))] = _F["strategy"].default
    k: Annotated[int, WithinRange(*panel_options.K_PER_ROUND)] = _F["k"].default
    deformable: bool = _F["deformable"].default
    device: Annotated[str, Choice(list(DEVICES))] = DEVICES[0]


@parameterNodeWrapper
class LongitudinalALParameterNode:
    baseline: vtkMRMLScalarVolumeNode
    followup: vtkMRMLScalarVolumeNode
    run: RunPack


def wrap(node) -> LongitudinalALParameterNode:
    """The wrapper on ``node``, after resetting values this machine does not offer (the wrapper raises on them)."""
    run_options.sanitize(node, DEVICES)
    return LongitudinalALParameterNode(node)
