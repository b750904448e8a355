// The generated code of tradekernel.v1, one namespace per .proto file:
// `proto.orders.OrderSide`, `proto.components.ComponentServiceService`.

export * as components from "./generated/tradekernel/v1/components";
export * as kernel from "./generated/tradekernel/v1/kernel";
export * as marketData from "./generated/tradekernel/v1/market_data";
export * as models from "./generated/tradekernel/v1/models";
export * as orders from "./generated/tradekernel/v1/orders";
export * as plugins from "./generated/tradekernel/v1/plugins";
export * as portfolio from "./generated/tradekernel/v1/portfolio";
export * as risk from "./generated/tradekernel/v1/risk";
export * as types from "./generated/tradekernel/v1/types";
