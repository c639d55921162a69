"""The Segment Editor parameter node the panel's embedded editor shares with Slicer's Segment Editor.

Why: a private node per panel setup piles up, and after File > Close Scene it
is gone while the widget still points at it (the editor greys out). The
Segment Editor module and MONAI Label use the scene's singleton tagged
"SegmentEditor"; selecting it again after a close or an import keeps the
embedded editor working and in step with the Segment Editor module.
"""

from __future__ import annotations

SINGLETON_TAG = "SegmentEditor"
NODE_CLASS = "vtkMRMLSegmentEditorNode"


def segment_editor_node(scene):
    """The scene's singleton editor node, created (as the Segment Editor module does) when absent."""
    node = scene.GetSingletonNode(SINGLETON_TAG, NODE_CLASS)
    if node is None:
        node = scene.CreateNodeByClass(NODE_CLASS)
        node.UnRegister(None)  # CreateNodeByClass hands over a reference; the scene keeps its own
        node.SetSingletonTag(SINGLETON_TAG)
        node = scene.AddNode(node)
    return node
