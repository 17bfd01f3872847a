from catalog.store.tables import metadata
from points_platform.migrations import run_env

run_env(metadata)
