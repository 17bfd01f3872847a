-- The wallet's tables distributed by user_id on Citus (docs/scaling.md, step 3), co-located with
-- `accounts`, so that every statement of one user's request runs on one shard.
--
-- Run on the coordinator after the wallet's migrations (`points migrate`), before any traffic:
--   psql "$WALLET_DATABASE_URL" -f deploy/citus/wallet.sql
--
-- Every primary and unique key of these tables starts with or contains user_id
-- (tests/wallet/test_schema_keys.py), which Citus requires of a distributed table; and
-- tests/deploy/test_citus.py checks that this file distributes every table of the migrated schema.
-- Not run against a Citus cluster here (none on this machine).

SELECT create_distributed_table('accounts', 'user_id');
SELECT create_distributed_table('transactions', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('postings', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('idempotency', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('hold_requests', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('holds', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('payouts', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('payment_references', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('points_lots', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('suspended_users', 'user_id', colocate_with => 'accounts');
SELECT create_distributed_table('user_status_changes', 'user_id', colocate_with => 'accounts');

-- No reference tables: the wallet has no global table besides alembic_version (kept on the
-- coordinator, local).
