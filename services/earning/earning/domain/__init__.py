"""Pure earning rules: no grpc, no sqlalchemy, no clock (time is passed in)."""
