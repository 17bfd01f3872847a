"""Persistence of the wallet: one module per concern, each function one DB transaction."""
