"""Persistence of the earning service: repositories over one connection (`Session`), and the
`Database` that opens their transactions; the set-based hot-path SQL stays in `batch`.

Implements `earning.use_cases.ports.Database`: the use cases own the transaction boundaries (and
never hold one open across a wallet call) without seeing SQLAlchemy.
"""
