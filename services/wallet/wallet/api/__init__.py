"""gRPC transport of the wallet: the servicer and its call policy (`servicer`), proto <-> use case
mapping (`mapping`) and request validation (`validation`)."""

from wallet.api.servicer import FULL_NAME, POLICY, USER_SCOPED, WalletApi, service_spec

__all__ = ["FULL_NAME", "POLICY", "USER_SCOPED", "WalletApi", "service_spec"]
