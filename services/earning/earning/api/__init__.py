"""gRPC transport of the earning service: the servicer and its call policy (`servicer`), proto <->
domain mapping with the requests' validation (`mapping`)."""

from earning.api.servicer import FULL_NAME, POLICY, USER_SCOPED, EarningApi, service_spec

__all__ = ["FULL_NAME", "POLICY", "USER_SCOPED", "EarningApi", "service_spec"]
