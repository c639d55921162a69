"""LongitudinalALLib: the Slicer-free core of the LongitudinalAL extension.

Everything here runs headless (no ``slicer``, no ``qt``) except the ``scene``
subpackage, which works on MRML nodes through ``import slicer`` and is imported
only by the Slicer module's Logic and by its tests.
"""

__version__ = "0.1.0"
