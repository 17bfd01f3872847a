"""Earning use cases: each opens its own short transactions and never holds one across a wallet call."""
