"""Use cases of the redemption service: commands (`commands`), the ports they need (`ports`) and the
records they exchange (`records`); redemptions and recovery (`redemptions`), the saga (`saga_runner`),
entitlement uses (`entitlements`), raffle draws (`raffles`)."""
