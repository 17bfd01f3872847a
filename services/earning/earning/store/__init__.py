"""Persistence of the earning service: SQLAlchemy Core statements over one AsyncConnection.

Every function takes the connection of the caller's transaction; the use cases own the
transaction boundaries (and never hold one open across a wallet call).
"""
