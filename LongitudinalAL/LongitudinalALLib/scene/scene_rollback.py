"""Undo a half-applied job result: remove the nodes it added, restore the module's parameters.

Why: putting a result into the scene creates several nodes one after another
(transform, volumes, segmentation, table...); if one step fails, the ones made
before it must not stay behind, and the parameter node must again name the
last good session, options and inputs (only ``lal.*`` entries are touched).
"""

from __future__ import annotations

PREFIX = "lal."


class SceneRollback:
    """Snapshot of the scene's node IDs and the parameter node's ``lal.*`` values and references."""

    def __init__(self, scene, param) -> None:
        self.scene, self.param = scene, param
        self.node_ids = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
        self.values = {name: param.GetParameter(name) for name in param.GetParameterNames()
                       if name.startswith(PREFIX)}
        self.references = {role: param.GetNodeReferenceID(role) for role in self._roles()}

    def _roles(self) -> list[str]:
        roles = (self.param.GetNthNodeReferenceRole(i) for i in range(self.param.GetNumberOfNodeReferenceRoles()))
        return [role for role in roles if role and role.startswith(PREFIX)]

    def undo(self) -> list[str]:
        """Remove every node added since the snapshot and restore the entries; returns the removed IDs."""
        added = [self.scene.GetNthNode(i).GetID() for i in range(self.scene.GetNumberOfNodes())]
        added = [node_id for node_id in added if node_id not in self.node_ids]
        for node_id in added:
            node = self.scene.GetNodeByID(node_id)
            if node is not None:  # a display or storage node may have gone with its owner
                self.scene.RemoveNode(node)
        for name in [n for n in self.param.GetParameterNames() if n.startswith(PREFIX)]:
            if name not in self.values:
                self.param.UnsetParameter(name)
        for name, value in self.values.items():
            self.param.SetParameter(name, value)
        for role in self._roles():
            self.param.SetNodeReferenceID(role, self.references.get(role))
        return added
