-- Runs once, when the postgres container initialises an empty data directory.
-- One database per service (docs/architecture.md). Each service would also create its own database on
-- start if missing; creating them here keeps that privilege optional.
CREATE DATABASE points_wallet;
CREATE DATABASE points_catalog;
CREATE DATABASE points_earning;
CREATE DATABASE points_redemption;
