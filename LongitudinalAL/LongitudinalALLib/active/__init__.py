"""The active-learning loop: session store, strategies, simulation; everything a round needs."""
