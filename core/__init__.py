"""Types and errors shared by every layer: the vocabulary of one rebalance."""
