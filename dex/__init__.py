"""DEX aggregator adapters (1inch, Jupiter) and the checks on what they return."""
