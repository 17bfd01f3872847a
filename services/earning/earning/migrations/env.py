from points_platform.migrations import run_env

from earning.tables import metadata

run_env(metadata)
