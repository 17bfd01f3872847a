"""Persistence of the redemption service: sagas and their step log (`sagas`, with the batched hot path in
`saga_batches` and `saga_sql`), entitlements and raffle draws (`entitlements`), the tables (`tables`)."""
