"""Local worlds for tests and the demo: anvil worlds, the Solana node, aggregator stand-ins."""
