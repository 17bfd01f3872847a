from points_platform.migrations import run_env
from wallet.tables import metadata

run_env(metadata)
