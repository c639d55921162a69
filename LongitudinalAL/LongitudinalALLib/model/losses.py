"""Training loss for the one-channel (sigmoid) new-lesion logit.

Dice handles the extreme class imbalance (a few lesion pixels per slice); the
focal or BCE term gives a useful gradient on lesion-free slices, where the Dice
term alone has nothing to say. Dice is computed over the whole batch
(``batch=True``) so lesion-free slices do not each contribute an undefined ratio.
"""

from __future__ import annotations

from torch import nn

from LongitudinalALLib.core.errors import InputError


def build_loss(kind: str = "dicefocal", *, lambda_dice: float = 1.0, lambda_other: float = 1.0,
               focal_gamma: float = 2.0) -> nn.Module:
    """``kind``: "dicefocal" (MONAI DiceFocalLoss) or "dicebce" (MONAI DiceCELoss, sigmoid).

    The returned module maps (logits (B,1,H,W), target (B,1,H,W) float {0,1}) -> scalar.
    """
    from monai.losses import DiceCELoss, DiceFocalLoss

    if kind == "dicefocal":
        return DiceFocalLoss(sigmoid=True, batch=True, gamma=focal_gamma,
                             lambda_dice=lambda_dice, lambda_focal=lambda_other)
    if kind == "dicebce":
        return DiceCELoss(sigmoid=True, batch=True, lambda_dice=lambda_dice, lambda_ce=lambda_other)
    raise InputError(f"Unknown loss {kind!r}.", "Use 'dicefocal' or 'dicebce'.")
