"""DEX aggregator adapters (1inch, Jupiter), each beside the checks on what it returns."""
