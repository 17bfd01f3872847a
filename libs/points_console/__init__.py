"""The operator console: a web front end that talks to the four services over gRPC only (docs/console.md)."""
