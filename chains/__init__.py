"""Chain adapters: read balances (and later simulate and send) on each chain family."""
