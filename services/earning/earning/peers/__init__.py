"""gRPC clients of the services earning calls, implementing the ports of `earning.use_cases.ports`."""
