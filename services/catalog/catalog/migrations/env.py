from points_platform.migrations import run_env

from catalog.tables import metadata

run_env(metadata)
