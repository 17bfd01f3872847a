"""Pure rules of the redemption service (no grpc, sqlalchemy, asyncpg, no clock): the saga (`saga`),
the item it sells (`item`), entitlements (`entitlements`), raffles (`raffle`)."""
