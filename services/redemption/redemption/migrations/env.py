from points_platform.migrations import run_env
from redemption.store.tables import metadata

run_env(metadata)
