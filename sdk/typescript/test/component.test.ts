// Components written in TypeScript, run by a real kernel: one it spawns (the
// example strategy) and one it dials in this process.

import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";

import {
  CommandRefused,
  type ComponentContext,
  type ComponentDefinition,
  KernelClient,
  OrderStatus,
  formatDecimal,
  type proto,
  serveComponent,
} from "../src";
import { READ_TOKEN, type RunningKernel, startKernel, waitFor } from "./kernel";

const USDT = 10n ** 8n;
const EXAMPLE = path.resolve(__dirname, "..", "examples", "quote_imbalance.js");

async function stopCleanly(kernel: RunningKernel): Promise<void> {
  const exitCode = await kernel.stop();
  assert.equal(exitCode, 0, `the kernel did not stop cleanly:\n${kernel.log().slice(-3000)}`);
}

describe("the example strategy spawned by the kernel", () => {
  it("trades through risk and the paper venue, and its own position agrees with the kernel's", async () => {
    const kernel = await startKernel(
      [
        "[[components]]",
        'name = "ts_imbalance"',
        `command = ${JSON.stringify([process.execPath, EXAMPLE])}`,
        "[components.settings]",
        'venue = "binance"',
        'symbol = "BTCUSDT"',
        'quantity = "0.001"',
        'max_position = "0.003"',
        "threshold_bps = 6000",
        "cooldown_ms = 500",
      ].join("\n"),
    );
    const client = new KernelClient(kernel.address, { token: READ_TOKEN });
    try {
      await waitFor(() => (kernel.log().includes("component ts_imbalance up: strategy quote-imbalance 0.1.0") ? true : undefined), 30_000);
      const filled = await waitFor(async () => {
        const orders = await client.listOrders({ filter: { strategy: "ts_imbalance" } });
        return orders.some((order) => order.status === OrderStatus.ORDER_STATUS_FILLED) ? orders : undefined;
      }, 60_000);
      for (const order of filled) {
        assert.match(order.clientOrderId, /^ts_imbalance-/);
        assert.deepEqual(order.quantity, { units: 100_000n, precision: 8 });
        assert.equal(order.venue, "paper");
      }
      // The strategy logs its position, computed from its order updates, after
      // every fill; the kernel's book of the paper venue must reach the same
      // figure (nothing else trades in this kernel).
      await waitFor(async () => {
        const logged = [...kernel.log().matchAll(/component ts_imbalance: position (-?\d+\.\d+)/g)].at(-1)?.[1];
        const [position] = await client.positions({ venue: "paper", symbol: "BTCUSDT", includeFlat: true });
        const held = position === undefined ? undefined : formatDecimal(position.quantity!);
        return logged !== undefined && logged === held ? true : undefined;
      }, 20_000);
    } finally {
      client.close();
      await stopCleanly(kernel);
    }
  });
});

/** A strategy that records what the kernel sends it and places two orders on its first book. */
function recordingStrategy() {
  const seen = {
    start: undefined as proto.components.SessionStart | undefined,
    snapshots: 0,
    updates: [] as proto.orders.OrderUpdate[],
    fills: [] as proto.orders.OrderFilled[],
    refusal: undefined as Error | undefined,
    shutdown: undefined as proto.components.Shutdown | undefined,
    takeId: undefined as string | undefined,
    restId: undefined as string | undefined,
  };
  let placed = false;
  const definition: ComponentDefinition = {
    name: "recorder",
    version: "1.2.3",
    kind: "strategy",
    subscriptions: [{ instruments: [["binance", "BTCUSDT"]], kinds: ["book"] }],
    onStart(context) {
      seen.start = context.start;
    },
    async onBookSnapshot(snapshot, context) {
      seen.snapshots += 1;
      if (placed || snapshot.asks.length === 0 || snapshot.bids.length === 0) return;
      placed = true;
      const ask = snapshot.asks[0].price!.units;
      const bid = snapshot.bids[0].price!.units;
      const common = { venue: "binance", symbol: "BTCUSDT", quantity: "0.001" } as const;
      seen.takeId = await context.submit({ ...common, side: "buy", timeInForce: "ioc", price: { units: ask + 50n * USDT, precision: 8 } });
      seen.restId = await context.submit({ ...common, side: "buy", price: { units: bid - 100n * USDT, precision: 8 } });
      seen.refusal = await context.submit({ ...common, symbol: "NOPEUSDT", side: "buy", price: "1" }).then(
        () => undefined,
        (error: Error) => error,
      );
    },
    onOrderUpdate(update, context: ComponentContext) {
      seen.updates.push(update);
      if (update.clientOrderId === seen.restId && update.status === OrderStatus.ORDER_STATUS_NEW) {
        void context.cancel(update.clientOrderId);
      }
    },
    onOrderEvent(event) {
      if (event.event?.$case === "filled") seen.fills.push(event.event.value);
    },
    onShutdown(shutdown) {
      seen.shutdown = shutdown;
    },
  };
  return { definition, seen };
}

describe("a component the kernel dials", () => {
  it("gets its session, places orders that fill and cancel, hears them back, and is told to shut down", async () => {
    const { definition, seen } = recordingStrategy();
    const component = await serveComponent(definition);
    const kernel = await startKernel(
      ["[[components]]", 'name = "ts_dialed"', `endpoint = "${component.address}"`, "heartbeat_ms = 200"].join("\n"),
    );
    const client = new KernelClient(kernel.address, { token: READ_TOKEN });
    try {
      const statuses = (id: string | undefined) =>
        seen.updates.filter((update) => update.clientOrderId === id).map((update) => update.status);
      await waitFor(
        () =>
          statuses(seen.takeId).includes(OrderStatus.ORDER_STATUS_FILLED) &&
          statuses(seen.restId).includes(OrderStatus.ORDER_STATUS_CANCELED) &&
          seen.refusal !== undefined
            ? true
            : undefined,
        30_000,
      );
      assert.equal(seen.start?.component, "ts_dialed");
      assert.equal(seen.start?.heartbeatIntervalMs, 200);
      const btc = seen.start?.instruments.find((item) => item.venue === "binance" && item.symbol === "BTCUSDT");
      assert.equal(btc?.pricePrecision, 8);
      assert.ok(seen.snapshots >= 1);
      assert.match(seen.takeId!, /^ts_dialed-/);
      assert.ok(seen.refusal instanceof CommandRefused);
      assert.match(seen.refusal.message, /unknown instrument binance\.NOPEUSDT/);

      const takeFills = seen.fills.filter((fill) => fill.clientOrderId === seen.takeId);
      assert.equal(
        takeFills.reduce((sum, fill) => sum + fill.quantity!.units, 0n),
        100_000n,
      );
      assert.equal(takeFills.at(-1)?.leavesQuantity?.units, 0n);

      // The kernel's API shows the same orders under the component's name.
      const listed = await client.listOrders({ filter: { strategy: "ts_dialed" } });
      const byId = new Map(listed.map((order) => [order.clientOrderId, order.status]));
      assert.equal(byId.get(seen.takeId!), OrderStatus.ORDER_STATUS_FILLED);
      assert.equal(byId.get(seen.restId!), OrderStatus.ORDER_STATUS_CANCELED);
      assert.equal(listed.length, 2, "the refused intent placed nothing");
    } finally {
      client.close();
      await stopCleanly(kernel);
      await component.stop();
    }
    assert.ok(seen.shutdown, "the kernel stopped without telling the component");
  });
});
