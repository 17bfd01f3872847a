from points_platform.migrations import run_env
from wallet.store.tables import metadata

run_env(metadata)
