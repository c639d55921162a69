"""The run options: one home in the parameter node, safe on any machine the scene travels to.

Why: the panel binds a ``@parameterPack`` named ``run`` (``scene/panel_params.py``),
which Slicer's parameter node wrapper stores as ``run.<field>`` strings. Run,
Retrain and Re-pair all read those same strings here (:func:`read`), so a
strategy, k or device changed after Run is what the next job uses; nothing is
copied into a frozen spec. A scene saved elsewhere may name a device, a
strategy or a value this machine does not offer; Slicer's wrapper then raises
while binding (``QComboBoxToStringableConnector.write``) and even while reading
the pack (its ``__init__`` validates). :func:`sanitize` resets such values before
the wrapper sees them, with one log line each. The string formats are those of
Slicer 5.10's serializers (``str(value)``, ``"True"``/``"False"``); a test checks
them against the real wrapper.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.scene import panel_options

log = logging.getLogger(__name__)

#: the pack's field name in the parameter node wrapper: its values are stored as "run.<field>"
PACK = "run"
#: keys of older scenes: the wrapper's flat fields (before the pack) and the JSON copy made at Run
_FLAT_KEYS = ("spacingMm", "size", "strategy", "k", "deformable", "device")
_OLD_JSON = "lal.options"
#: where a session's engine overrides are kept (session_scene's "engine" value), and their names
ENGINE_JSON = "lal.engine"
ENGINE_KEYS = ("seed", "model_config", "init_weights", "train", "case_id")


@dataclass(frozen=True)
class PanelField:
    key: str                      # the pack's field (and the .ui's SlicerParameterName after "run.")
    attr: str                     # the RunOptions attribute
    kind: type                    # int, float, str or bool
    default: Any
    bounds: tuple | None = None   # (minimum, maximum) for numbers
    choices: tuple | None = None  # allowed strings (None for device: this machine's devices)


@dataclass
class RunOptions:
    """One run's options: the panel's (the ``run`` pack) and engine overrides no panel offers.

    The panel fields are written into the parameter node by :func:`write` (what a user does in
    the panel); the overrides (tests, demo, benchmarks) are kept with the session (``lal.engine``).
    """

    spacing_mm: float = 1.0
    size: int = 256
    deformable: bool = False
    strategy: str = panel_options.DEFAULT_STRATEGY
    k: int = 10
    device: str = ""  # "cuda", "cpu" or "mps"; "": the best this machine offers
    prepare: dict[str, Any] = field(default_factory=dict)  # further PrepareOptions (n4, axis, initial_transform)
    seed: int = 0
    model_config: dict[str, Any] | None = None   # None: the bundled model
    init_weights: str = "bundled"
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    case_id: str = "case"

    def engine(self) -> dict[str, Any]:
        """The overrides kept with the session (never shown in the panel); an initial transform belongs
        to one Re-pair only, so it is not kept."""
        prepare = {k: v for k, v in self.prepare.items() if k != "initial_transform"}
        return {"prepare": prepare, "seed": self.seed, "model_config": self.model_config,
                "init_weights": self.init_weights, "train": dict(self.train), "case_id": self.case_id}

    def prepare_options(self) -> dict[str, Any]:
        """``imaging.prepare.PrepareOptions`` keywords: the panel's three plus the overrides."""
        return {"spacing_mm": self.spacing_mm, "size": self.size, "deformable": self.deformable, **self.prepare}


#: the panel's fields; each default is the RunOptions default (one place to change it)
FIELDS = (
    PanelField("spacingMm", "spacing_mm", float, RunOptions.spacing_mm, bounds=panel_options.SPACING_MM),
    PanelField("size", "size", int, RunOptions.size, bounds=panel_options.SIZE_PX),
    PanelField("strategy", "strategy", str, RunOptions.strategy, choices=panel_options.STRATEGIES),
    PanelField("k", "k", int, RunOptions.k, bounds=panel_options.K_PER_ROUND),
    PanelField("deformable", "deformable", bool, RunOptions.deformable),
    PanelField("device", "device", str, None),  # default and choices: this machine's devices, best first
)


def _default(f: PanelField, devices: tuple[str, ...]):
    return devices[0] if f.key == "device" else f.default


def _format(value) -> str:
    """Slicer 5.10's serializers: ``str(value)`` for numbers and strings, "True"/"False" for bools."""
    return ("True" if value else "False") if isinstance(value, bool) else str(value)


def _checked(f: PanelField, raw: str, devices: tuple[str, ...]):
    """(value this machine accepts, why the stored one was replaced or "")."""
    default = _default(f, devices)
    if f.kind is bool:
        return (raw == "True", "") if raw in ("True", "False") else (default, "is not True/False")
    if f.kind is str:
        choices = devices if f.key == "device" else f.choices
        return (raw, "") if raw in choices else (default, "is not offered on this machine")
    try:
        value = f.kind(raw)
    except ValueError:
        return default, "is not a number"
    if value != value:  # NaN
        return default, "is not a number"
    low, high = f.bounds
    clamped = min(max(value, f.kind(low)), f.kind(high))
    return clamped, ("" if clamped == value else f"is outside {low}-{high}")


def _migrate(param) -> None:
    """Move an older scene's options into the pack once: the flat wrapper fields, else the Run copy.

    Their presence alone decides (they are removed here): a panel open while such a scene is
    imported has already written its defaults into the pack.
    """
    if not param.HasParameter(_OLD_JSON) and not any(param.HasParameter(key) for key in _FLAT_KEYS):
        return
    old = {}
    raw_json = param.GetParameter(_OLD_JSON)
    if raw_json:
        try:
            stored = json.loads(raw_json)
            prepare = dict(stored.get("prepare") or {})
            old = {"spacingMm": prepare.pop("spacing_mm", None), "size": prepare.pop("size", None),
                   "deformable": prepare.pop("deformable", None), "strategy": stored.get("strategy"),
                   "k": stored.get("k"), "device": stored.get("device")}
            engine = RunOptions(prepare=prepare, **{k: stored[k] for k in ENGINE_KEYS if k in stored}).engine()
            param.SetParameter(ENGINE_JSON, json.dumps(engine))
        except (ValueError, AttributeError, TypeError):
            pass  # a damaged copy: the panel's defaults
    for key in _FLAT_KEYS:  # the panel's last values win over the copy frozen at Run
        if param.GetParameter(key):
            old[key] = param.GetParameter(key)
    for key, value in old.items():
        if value not in (None, ""):
            param.SetParameter(f"{PACK}.{key}", value if isinstance(value, str) else _format(value))
    for key in _FLAT_KEYS:
        param.UnsetParameter(key)
    if raw_json:
        param.UnsetParameter(_OLD_JSON)


def sanitize(param, devices: tuple[str, ...]) -> list[str]:
    """Make every stored panel value one this machine offers; returns the one-line reasons (also logged).

    Call before the wrapper reads or binds the node (module setup) and after a scene import.
    Absent fields get their defaults (Slicer's pack serializer looks at the first field only
    and rewrites the whole pack when it is missing); a node without any is left to the wrapper.
    """
    if param is None:
        return []
    _migrate(param)
    keys = [f"{PACK}.{f.key}" for f in FIELDS]
    if not any(param.HasParameter(key) for key in keys):
        return []  # a new scene: the wrapper writes its defaults
    notes = []
    for f, key in zip(FIELDS, keys):
        if not param.HasParameter(key):  # the wrapper checks only the first key and would reset them all
            param.SetParameter(key, _format(_default(f, devices)))
            continue
        raw = param.GetParameter(key)
        value, why = _checked(f, raw, devices)
        if why:
            param.SetParameter(key, _format(value))
            notes.append(f"LongitudinalAL: this scene's {f.key} {raw!r} {why}; using {_format(value)!r}.")
            log.warning(notes[-1])
    return notes


def read(param, devices: tuple[str, ...], base: RunOptions | None = None) -> RunOptions:
    """The current run options: the panel's from the pack (checked), the overrides from ``base``."""
    options = RunOptions(**vars(base)) if base is not None else RunOptions()
    for f in FIELDS:
        raw = param.GetParameter(f"{PACK}.{f.key}") if param is not None else ""
        value = _checked(f, raw, devices)[0] if raw else _default(f, devices)
        setattr(options, f.attr, value)
    return options


def write(param, options: RunOptions, devices: tuple[str, ...]) -> None:
    """Set the panel's fields as a user would; a value the panel would not offer is one clear line.

    ``device=""`` means the best device this machine offers. Values outside the panel's ranges
    (tests' tiny slices) go into ``options.prepare``, which overrides the panel for that session.
    """
    checked = {}
    for f in FIELDS:
        value = getattr(options, f.attr)
        if f.key == "device" and not value:
            value = devices[0]
        ok, why = _checked(f, _format(value), devices)
        if why:
            offered = devices if f.key == "device" else f.choices or f"{f.bounds[0]} to {f.bounds[1]}"
            raise InputError(f"The {f.attr.replace('_', ' ')} {value!r} {why}.", f"Use one of: {offered}.")
        checked[f.key] = ok
    for key, value in checked.items():  # nothing is written unless every value is offered
        param.SetParameter(f"{PACK}.{key}", _format(value))
