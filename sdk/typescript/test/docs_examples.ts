// The TypeScript examples of docs/api.md and docs/components.md, copied
// verbatim so `npm run build` type-checks them. Nothing here runs: every
// example is the body of a function no test calls. The documents import
// "@tradekernel/sdk"; inside the package that is "../src".

import { readFileSync } from "node:fs";
import { credentials, ServerCredentials } from "@grpc/grpc-js";
import {
  amountToDecimal,
  type ComponentDefinition,
  formatDecimal,
  KernelClient,
  OrderStatus,
  proto,
  runComponent,
  serveComponent,
} from "../src";

// docs/api.md: the setup every service's example shares.
const client = new KernelClient("127.0.0.1:50051", { token: "s3cr3t-ops" });
// For rpcs the client does not wrap: its raw stubs (client.risk, client.plugins, ...)
// with client.metadata(), which carries the token.

// docs/api.md: KernelService.
export async function kernelService(): Promise<void> {
  const { kernelVersion, apiVersion } = await client.version();
  const status = await client.status();             // tradingState, uptimeNs (bigint), components, books
  const summary = await client.configSummary();     // venues, strategies, replays, plug-in lists
}

// docs/api.md: MarketDataService.
export async function marketDataService(): Promise<void> {
  const instruments = await client.instruments("binance");
  const { snapshot, state } = await client.bookSnapshot("binance", "BTCUSDT", 5);
  for await (const event of client.streamBooks([["binance", "BTCUSDT"]], { depth: 10, throttleMs: 100 })) {
    if (event.$case === "snapshot") console.log("snapshot", event.value.sequence, event.value.bids.length);
    else if (event.$case === "delta") console.log("delta", event.value.firstSequence, event.value.sequence);
    else console.log("status", event.value.state, event.value.reason);
    break;                                           // leaving the loop cancels the call
  }
  for await (const quote of client.streamQuotes([["binance", "BTCUSDT"]])) {
    console.log(formatDecimal(quote.bidPrice!), formatDecimal(quote.askPrice!));
    break;
  }
}

// docs/api.md: OrderService.
export async function orderService(): Promise<void> {
  const answer = await client.submitOrder({
    clientOrderId: "desk-42", venue: "binance", symbol: "BTCUSDT",
    side: "buy", orderType: "limit", timeInForce: "gtc",
    quantity: "0.001", price: "60000",              // decimal text, or { units: bigint, precision }
  });
  console.log(answer.order?.status, answer.denialReason, answer.replayed);
  await client.cancelOrder("desk-42");
  const cancelled = await client.cancelAll({ venue: "binance", symbol: "BTCUSDT" });
  const open = await client.listOrders({ openOnly: true, limit: 20 });
  for await (const { order, event } of client.streamOrderEvents({ strategy: "api" })) {
    console.log(order?.clientOrderId, order?.status, event?.event?.$case);   // "accepted", "filled", ...
    break;
  }
  for await (const { fill, side } of client.streamFills({ symbol: "BTCUSDT" })) {
    console.log(fill?.clientOrderId, side, formatDecimal(fill!.price!), formatDecimal(fill!.quantity!));
    break;
  }
}

// docs/api.md: PortfolioService.
export async function portfolioService(): Promise<void> {
  const positions = await client.positions({ venue: "binance", includeFlat: false });
  const pnl = await client.pnl();                     // realised, unrealised, fees, grossExposure, net
  console.log(pnl.net?.value, amountToDecimal(pnl.realised));
  for await (const { positions, pnl } of client.streamPortfolio({ intervalMs: 1000 })) {
    console.log(positions.length, pnl?.net?.value);
    break;
  }
}

// docs/api.md: RiskService.
export async function riskService(): Promise<void> {
  const state = await client.riskState();            // state: TradingState, denials, equity, ...
  await client.halt("venue incident");
  await client.resume("incident closed", "reducing");
  const current = await client.limits();
  const limits = proto.risk.RiskLimits.fromPartial({
    ...current.limits,
    defaults: { ...current.limits?.defaults, maxOrderNotional: { value: "250" } },
  });
  const updated = await new Promise<proto.risk.UpdateLimitsResponse>((resolve, reject) =>
    client.risk.updateLimits(
      proto.risk.UpdateLimitsRequest.fromPartial({ limits, expectedRevision: current.revision, reason: "desk cap" }),
      client.metadata(),
      (error, answer) => (error ? reject(error) : resolve(answer)),
    ),
  );
}

// docs/api.md: PluginService.
export async function pluginService(): Promise<void> {
  for (const plugin of await client.listPlugins()) console.log(plugin.name, plugin.status, plugin.reason);
  const enabled = await new Promise<proto.plugins.EnablePluginResponse>((resolve, reject) =>
    client.plugins.enablePlugin(
      proto.plugins.EnablePluginRequest.fromPartial({ name: "strategies" }),
      client.metadata(),
      (error, answer) => (error ? reject(error) : resolve(answer)),
    ),
  );
}

// docs/api.md: ModelService.
export async function modelService(): Promise<void> {
  const models = new proto.models.ModelServiceClient("127.0.0.1:50051", credentials.createInsecure());
  const listed = await new Promise<proto.models.ListModelsResponse>((resolve, reject) =>
    models.listModels(
      proto.models.ListModelsRequest.fromPartial({ name: "deeplob_btcusdt" }),
      client.metadata(),
      (error, answer) => (error ? reject(error) : resolve(answer)),
    ),
  );
  for (const model of listed.models) console.log(model.version, model.stage, model.uri);
}

// docs/components.md: Writing one in TypeScript.
export async function typescriptComponent(): Promise<void> {
  const touchBuyer: ComponentDefinition = {
    name: "touch-buyer",
    version: "1.0.0",
    kind: "strategy",                      // or "detector", "model", "signal"
    subscriptions: [{ instruments: [["binance", "BTCUSDT"]], kinds: ["quote"] }],
    onStart(context) {
      context.log("info", `settings ${JSON.stringify(context.settings)}`);
    },
    async onQuote(quote, context) {
      if (quote.askPrice === undefined) return;
      const clientOrderId = await context.submit({   // through the kernel's risk checks
        venue: "binance", symbol: "BTCUSDT", side: "buy", timeInForce: "ioc",
        quantity: "0.001", price: quote.askPrice, tag: "touch",
      });
      context.log("info", `placed ${clientOrderId}`);
    },
    onOrderUpdate(update, context) {
      if (update.status === OrderStatus.ORDER_STATUS_DENIED) context.log("warning", `denied: ${update.reason}`);
    },
    onOrderEvent(event) {
      if (event.event?.$case === "filled") console.log("fill", event.event.value.fillId);
    },
    onShutdown(shutdown, context) {
      context.log("info", `stopping: ${shutdown.reason}, ${shutdown.graceMs} ms to wind down`);
    },
  };

  runComponent(touchBuyer);

  const served = await serveComponent(touchBuyer, "127.0.0.1:0");   // 0: a free port
  console.log(served.address);                                      // for endpoint = "..."
  await served.stop(2000);

  // Mutual TLS: its own certificate, and only clients the kernel's CA signed.
  const secured = await serveComponent(touchBuyer, "0.0.0.0:7003", ServerCredentials.createSsl(
    readFileSync("pki/ca.pem"),
    [{ private_key: readFileSync("pki/component-key.pem"), cert_chain: readFileSync("pki/component.pem") }],
    true,
  ));
}
