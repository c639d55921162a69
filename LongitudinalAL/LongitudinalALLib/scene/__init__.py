"""MRML-facing layer of LongitudinalAL: the only place in the core that imports ``slicer``.

Modules here work on a ``vtkMRMLScene`` (Slicer's own or one built by
:mod:`.headless` on the ``slicer-core`` wheel) and never import ``qt``, so the
Slicer module's Logic and the tests share every line (the panel, ``panel.py``, gets
its one Qt object handed in). The heavy jobs live in ``LongitudinalALLib.jobs`` and
import no ``slicer`` at all: they run in a plain Python subprocess.
Import submodules explicitly (``from LongitudinalALLib.scene import volumes``);
this package's ``__init__`` imports nothing so the worker starts fast.
"""
