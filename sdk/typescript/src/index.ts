// @tradekernel/sdk: the tradekernel gRPC API from TypeScript.
//
//   KernelClient      typed client of the kernel's services (src/client.ts)
//   serveComponent    run an out-of-process component (src/component.ts)
//   parseDecimal ...  exact decimals, bigint units (src/decimal.ts)
//   proto.*           every generated message, enum and stub (src/generated/)

export * from "./client";
export * from "./component";
export * from "./decimal";
export * from "./errors";
export * as proto from "./proto";

// The names most callers need, without the namespace.
export { BookState } from "./generated/tradekernel/v1/market_data";
export { OrderSide, OrderStatus, OrderType, TimeInForce } from "./generated/tradekernel/v1/orders";
export { DenialReason, TradingState } from "./generated/tradekernel/v1/risk";
export type { Amount, Decimal, Instrument, InstrumentId } from "./generated/tradekernel/v1/types";
