-- The wallet's tables distributed by user_id on Citus (docs/scaling.md, step 3), co-located with
-- `accounts`, so that every statement of one user's request runs on one shard.
--
-- Run on the coordinator after the wallet's migrations (`points migrate`), before any traffic:
--   psql "$WALLET_DATABASE_URL" -f deploy/citus/wallet.sql
--
-- NOT COMPLETE. Four tables are not keyed by user_id yet (tests/wallet/test_schema_keys.py,
-- NOT_YET: transactions, postings, holds, payouts), and Citus refuses to distribute a table whose
-- primary or unique keys lack the distribution column. Until they are converted this file only
-- documents the layout; it has not been run against a Citus cluster here (none on this machine).

-- Per-user tables whose every key starts with user_id (checked by test_schema_keys.py).
SELECT create_distributed_table('accounts', 'user_id');
SELECT create_distributed_table('idempotency', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('hold_requests', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('payment_references', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('points_lots', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('suspended_users', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('user_status_changes', 'user_id', colocate_with => 'accounts');

-- To follow once their keys carry the user (docs/scaling.md lists what each needs):
-- SELECT create_distributed_table('transactions', 'user_id', colocate_with => 'accounts');
-- SELECT create_distributed_table('postings', 'user_id', colocate_with => 'accounts');
-- SELECT create_distributed_table('holds', 'user_id', colocate_with => 'accounts');
-- SELECT create_distributed_table('payouts', 'user_id', colocate_with => 'accounts');  -- creator_id renamed or kept as the column
--
-- No reference tables: the wallet has no global table besides alembic_version (kept on the
-- coordinator).
