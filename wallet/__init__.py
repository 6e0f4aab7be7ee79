"""Signers: local keys, Ledger, unsigned export."""
