"""gRPC transport of the redemption service: the servicer and its call policy (`servicer`), proto <->
domain mapping with the requests' validation (`mapping`)."""

from redemption.api.servicer import FULL_NAME, POLICY, USER_SCOPED, RedemptionApi, service_spec

__all__ = ["FULL_NAME", "POLICY", "USER_SCOPED", "RedemptionApi", "service_spec"]
