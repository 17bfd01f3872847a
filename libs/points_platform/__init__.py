"""Shared platform for the Points services: settings, logging, errors, auth, database and gRPC bootstrap."""
