"""What the module panel offers, fixed at import time and without torch.

Why: Slicer's parameter node wrapper fills a bound combo box from a ``Choice``
annotation (it clears whatever the Widget added), and int/float fields without
``WithinRange`` get an unbounded spin box. Listing the choices here keeps
opening the panel free of torch/sklearn imports (heavy work stays in the worker);
a test checks this list against the registered strategies.
"""

from __future__ import annotations

from .. import policy

#: query strategies offered in the panel (== strategies.available_strategies(), checked by a test)
STRATEGIES = ("clasp_pe", "entropy_mean", "entropy_sum", "entropy_topk", "least_confidence", "margin",
              "diff_weighted_entropy", "mc_entropy", "bald", "powerbald", "badge", "coreset",
              "cluster_margin", "lmi_hybrid", "cold_start", "fg_random", "random")
DEFAULT_STRATEGY = policy.DEFAULT_STRATEGY

#: (minimum, maximum) of the numeric options; the .ui's spin boxes carry the same ranges
SPACING_MM = (0.5, 5.0)
SIZE_PX = (64, 512)
K_PER_ROUND = (1, 100)
