// How the generated code is used (type-checked by tests/contract/test_typescript_client.py).
// A gRPC client: pass WalletService to Connect's createClient with @connectrpc/connect-node's
// gRPC transport, and the metadata of README.md ("authorization", "x-points-user") as headers.
import { create, toBinary } from "@bufbuild/protobuf";
import { Currency } from "./gen/points/common/v1/common_pb.js";
import { GetBalanceRequestSchema, WalletService } from "./gen/points/wallet/v1/wallet_pb.js";

export const request = create(GetBalanceRequestSchema, { userId: "alice", currency: Currency.POINTS });
export const wire: Uint8Array = toBinary(GetBalanceRequestSchema, request);
export const method: string = WalletService.method.getBalance.name;
