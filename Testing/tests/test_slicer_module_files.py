"""Static checks of the Slicer module files: CMake lists, .ui, extension metadata, import rules."""

from __future__ import annotations

import ast
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "LongitudinalAL"
LIB = MODULE / "LongitudinalALLib"
MODULE_PY = MODULE / "LongitudinalAL.py"
CATALOG_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                "build_subdirectory", "enabled", "tier"}  # schema v1.0.1: additionalProperties false


def _cmake_set(text: str, name: str) -> list[str]:
    match = re.search(rf"set\({name}\s+(.*?)\)", text, re.S)
    assert match, f"set({name} ...) missing"
    return [tok for tok in match.group(1).split() if not tok.startswith("#")]


def _shipped(folder: Path, base: Path = MODULE) -> set[str]:
    """Files under ``folder`` that ship: git-tracked ones (others' work in progress is not yet part of it)."""
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files", "--", str(folder)], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
        files = [ROOT / f for f in out]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in folder.rglob("*") if p.is_file()]
    return {p.relative_to(base).as_posix() for p in files
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")}


def _module_tree() -> ast.Module:
    return ast.parse(MODULE_PY.read_text(encoding="utf-8"))


def test_module_cmake_lists_every_library_file_and_resource():
    text = (MODULE / "CMakeLists.txt").read_text()
    scripts = _cmake_set(text, "MODULE_PYTHON_SCRIPTS")
    resources = _cmake_set(text, "MODULE_PYTHON_RESOURCES")
    assert scripts[0] == "${MODULE_NAME}.py"
    on_disk = {p for p in _shipped(LIB) if p.endswith(".py")}
    missing = "\n".join(f"  {p}" for p in sorted(on_disk - set(scripts)))
    assert not missing, f"add to MODULE_PYTHON_SCRIPTS in LongitudinalAL/CMakeLists.txt:\n{missing}"
    assert {s for s in scripts[1:] if not (MODULE / s).is_file()} == set(), "listed files that do not exist"
    res_missing = "\n".join(f"  {p}" for p in sorted(_shipped(MODULE / "Resources") - set(resources)))
    assert not res_missing, f"add to MODULE_PYTHON_RESOURCES in LongitudinalAL/CMakeLists.txt:\n{res_missing}"
    assert {r for r in resources if not (MODULE / r).is_file()} == set()
    assets = _cmake_set(text, "EXTENSION_ASSETS")
    top = {p.split("/", 1)[1] for p in _shipped(ROOT / "Resources", ROOT) if not p.startswith("Resources/Screenshots/")}
    assert top - set(assets) == set(), "add to EXTENSION_ASSETS in LongitudinalAL/CMakeLists.txt"
    assert {a for a in assets if not (ROOT / "Resources" / a).is_file()} == set()
    assert "slicerMacroBuildScriptedModule(" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_root_cmake_extension_metadata():
    text = (ROOT / "CMakeLists.txt").read_text()
    fields = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text))
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert fields.get(f"EXTENSION_{key}"), f"EXTENSION_{key} is empty"
    assert fields["EXTENSION_CATEGORY"] == "Active Learning" and fields["EXTENSION_DEPENDS"] == "PyTorch"
    assert "find_package(Slicer REQUIRED)" in text and "add_subdirectory(LongitudinalAL)" in text


def _s4ext() -> dict[str, str]:
    """keyword -> value of the top-level LongitudinalAL.s4ext (first token of a line is the keyword)."""
    lines = (ROOT / "LongitudinalAL.s4ext").read_text(encoding="utf-8").splitlines()
    pairs = (line.split(" ", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}


def test_s4ext_agrees_with_the_cmake_extension_values_and_the_catalog_entry():
    """The design card keeps LongitudinalAL.s4ext at the top level; it must say what CMake and the .json say."""
    s4ext = _s4ext()
    fields = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text()))
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert s4ext[key.lower()] == fields[f"EXTENSION_{key}"], key
    entry = json.loads((ROOT / "LongitudinalAL.json").read_text())
    assert (s4ext["scm"], s4ext["scmurl"], s4ext["scmrevision"]) == (entry["scm_type"], entry["scm_url"],
                                                                      entry["scm_revision"])
    assert s4ext["depends"].split() == entry["build_dependencies"]
    assert s4ext["build_subdirectory"] == entry["build_subdirectory"]
    assert s4ext["enabled"] == str(int(entry["enabled"]))


def test_catalog_entry_passes_the_index_rules():
    """Slicer/ExtensionsIndex checks <name>.json (check_repository_structure) and formats it with prettier
    (multilineArraysWrapThreshold 0: every array over several lines, review L2)."""
    text = (ROOT / "LongitudinalAL.json").read_text()
    entry = json.loads(text)
    assert text == json.dumps(entry, indent=2) + "\n", "write LongitudinalAL.json as json.dumps(indent=2)"
    assert set(entry) <= CATALOG_KEYS, f"keys not allowed by the schema: {set(entry) - CATALOG_KEYS}"
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json")
    assert entry["category"] == "Active Learning" and entry["build_dependencies"] == ["PyTorch"]
    assert entry["tier"] in (1, 3, 5)
    # check_git_repository_name: the repository (not the extension) name starts with "Slicer"
    repo = entry["scm_url"].strip("/").rsplit("/", 1)[-1].removesuffix(".git")
    assert repo.startswith(("Slicer", "Slicer-", "Slicer_", "SlicerExtension-", "SlicerExtension_")), repo
    assert not "LongitudinalAL".lower().startswith("slicer")  # check_extension_name: the extension must not


def test_icon_and_screenshot_urls_name_pngs_that_are_in_the_repository():
    """check_cmakelists_content downloads every screenshot URL: each must be a file this repository ships."""
    text = (ROOT / "CMakeLists.txt").read_text()
    fields = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text))
    entry = json.loads((ROOT / "LongitudinalAL.json").read_text())
    owner_repo = entry["scm_url"].removeprefix("https://github.com/").removesuffix(".git")
    assert fields["EXTENSION_HOMEPAGE"] == f"https://github.com/{owner_repo}"
    raw = f"https://raw.githubusercontent.com/{owner_repo}/{entry['scm_revision']}/"
    tracked = _shipped(ROOT / "Resources", ROOT)
    urls = [fields["EXTENSION_ICONURL"], *fields["EXTENSION_SCREENSHOTURLS"].split()]
    for url in urls:
        assert url.startswith(raw), url
        path = url.removeprefix(raw)
        assert path in tracked, f"{path} is not committed, so the URL would not resolve"
        assert (ROOT / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_ui_is_valid_and_has_every_widget_the_module_uses():
    tree = ET.parse(MODULE / "Resources" / "UI" / "LongitudinalAL.ui")
    names = {w.get("name"): w.get("class") for w in tree.iter("widget")}
    panel = ast.parse((LIB / "scene" / "panel.py").read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(panel) if isinstance(node, ast.Attribute) and (
        (isinstance(node.value, ast.Attribute) and node.value.attr == "ui" and isinstance(node.value.value, ast.Name)
         and node.value.value.id == "self") or (isinstance(node.value, ast.Name) and node.value.id == "ui"))}
    assert len(used) > 10, "the panel uses no ui widgets?"
    assert used - set(names) == set(), "widgets used by the Widget but missing from the .ui"
    assert names["baselineSelector"] == names["followupSelector"] == "qMRMLNodeComboBox"
    assert names["segmentEditorWidget"] == "qMRMLSegmentEditorWidget"
    assert names["suggestionTable"] == "qMRMLTableView"
    # every SlicerParameterName in the .ui is a field of the parameter node wrapper or of its "run" pack
    params = {p.find("string").text for p in tree.iter("property") if p.get("name") == "SlicerParameterName"}
    classes = {n.name: n for n in ast.parse((LIB / "scene" / "panel_params.py").read_text()).body
               if isinstance(n, ast.ClassDef)}

    def fields(name):
        return {n.target.id: ast.unparse(n.annotation) for n in classes[name].body if isinstance(n, ast.AnnAssign)}

    wrapper = fields("LongitudinalALParameterNode")
    assert wrapper.pop("run") == "RunPack"
    assert params == set(wrapper) | {f"run.{name}" for name in fields("RunPack")}


def test_module_file_is_a_shell_that_imports_qt_only_inside_slicer_callbacks():
    """SlicerNNUnet's shape: Module, a Widget that builds the library's panel, a thin Logic, the self-test."""
    tree = _module_tree()
    for node in tree.body:  # module level: nothing that needs the Qt application
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(m.split(".")[0] in ("qt", "ctk") for m in mods), f"qt imported at line {node.lineno}"
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(classes) == {"LongitudinalAL", "LongitudinalALWidget", "LongitudinalALLogic", "LongitudinalALTest"}
    widget = classes["LongitudinalALWidget"]
    assert widget.end_lineno - widget.lineno + 1 <= 30, "the Widget only builds scene/panel.Panel"
    assert {n.name for n in widget.body if isinstance(n, ast.FunctionDef)} == {"__init__", "setup", "enter", "exit",
                                                                           "cleanup"}


@pytest.mark.parametrize("path", sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts),
                         ids=lambda p: p.relative_to(LIB).as_posix())
def test_library_imports_slicer_only_in_scene_and_never_qt(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_scene = path.relative_to(LIB).parts[0] == "scene"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if node.__class__ is ast.ImportFrom and node.level:
                continue
            for m in mods:
                top = m.split(".")[0]
                assert top not in ("qt", "ctk"), f"{path.name}:{node.lineno} imports {m}"
                if not in_scene:
                    assert top != "slicer", f"{path.name}:{node.lineno} imports slicer outside scene/"


#: the layers, lowest first: a module may import its own layer and the ones below, never above
LAYERS = {"core": 0, "imaging": 1, "cohort": 1, "model": 2, "active": 3, "jobs": 4, "scene": 5, "commands": 6}


def _library_imports(path):
    """Top-level LongitudinalALLib packages that ``path`` imports (lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path.name}:{node.lineno}: relative import"
        for name in names:
            parts = name.split(".")
            if parts[0] == "LongitudinalALLib" and len(parts) > 1:
                yield parts[1], node.lineno


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_itself_and_the_layers_below(layer):
    assert sorted(p.name for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)
    for path in sorted((LIB / layer).rglob("*.py")):
        for imported, line in _library_imports(path):
            assert imported in LAYERS, f"{path.relative_to(LIB)}:{line} imports LongitudinalALLib.{imported}"
            assert LAYERS[imported] <= LAYERS[layer], (
                f"{path.relative_to(LIB)}:{line}: layer {layer} imports the higher layer {imported}")


def test_worker_side_modules_do_not_import_slicer():
    """The job worker runs in a plain Python child: nothing under jobs/ may reach ``slicer``."""
    for path in sorted((LIB / "jobs").rglob("*.py")):
        tops = {t for t, _ in _library_imports(path)}
        assert "scene" not in tops, path.name
        tree = ast.parse(path.read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "slicer" not in mods, path.name


def test_requirements_leave_torch_and_simpleitk_to_slicer_and_icon_is_128px():
    reqs = (MODULE / "Resources" / "requirements.txt").read_text().lower()
    lines = [l.split("#")[0].strip() for l in reqs.splitlines() if l.split("#")[0].strip()]
    assert not any(re.match(r"(torch|simpleitk)\b", l) for l in lines)
    assert {"monai", "safetensors", "scikit-learn"} <= {re.split(r"[<>=!~]", l)[0] for l in lines}
    png = (ROOT / "Resources" / "Icons" / "LongitudinalAL.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (128, 128)


def _module_imports(path: Path) -> set[str]:
    """Library modules ``path`` imports (lazy ones included, TYPE_CHECKING-only ones not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test).endswith("TYPE_CHECKING") for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("LongitudinalALLib.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("LongitudinalALLib"):
            out |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
    return out


def test_no_import_loop_inside_a_layer():
    """Architecture review 2: four loops inside folders (store/store_labels/session_recovery, strategies base/
    uncertainty, commands prepare/suggest, registration pipeline/mirror) hid a class split across files."""
    modules = {".".join(("LongitudinalALLib", *p.relative_to(LIB).with_suffix("").parts)): p
               for p in LIB.rglob("*.py") if "__pycache__" not in p.parts and p.name != "__init__.py"}
    graph = {name: {m for m in _module_imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import loop: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
