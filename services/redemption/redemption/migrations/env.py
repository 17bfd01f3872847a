from points_platform.migrations import run_env
from redemption.tables import metadata

run_env(metadata)
