"""Query strategies: which unlabelled slices to label next.

``get_strategy(name, **options)`` builds one; ``available_strategies()`` lists
the names. Importing this package registers every strategy module.
"""

from LongitudinalALLib.active.strategies import (  # noqa: F401  (importing registers the strategies)
    bayesian,
    clasp_pe,
    cold_start,
    diversity,
    lmi_al,
    random_,
    uncertainty,
)
from LongitudinalALLib.active.strategies.base import (
    QueryContext,
    QueryStrategy,
    Selection,
    available_strategies,
    describe_strategies,
    get_strategy,
    rank_candidates,
)

__all__ = ["QueryContext", "QueryStrategy", "Selection", "available_strategies", "describe_strategies", "get_strategy",
           "rank_candidates"]
