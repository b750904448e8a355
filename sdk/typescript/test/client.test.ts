// KernelClient against a real kernel: market data, orders, fills, portfolio,
// risk and the refusals of tokens without the right scope.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  ApiError,
  type BookEvent,
  type Decimal,
  DenialReason,
  KernelClient,
  OrderSide,
  OrderStatus,
  TradingState,
  amountToDecimal,
  formatDecimal,
  parseDecimal,
  proto,
  rescale,
} from "../src";
import { ADMIN_TOKEN, READ_TOKEN, type RunningKernel, TRADE_TOKEN, startKernel, waitFor } from "./kernel";

const PRICE_PRECISION = 8; // Binance spot BTCUSDT
const USDT = 10n ** 8n;
const BTCUSDT = ["binance", "BTCUSDT"] as const;

let kernel: RunningKernel;
let reader: KernelClient;
let trader: KernelClient;
let admin: KernelClient;

before(async () => {
  kernel = await startKernel();
  reader = new KernelClient(kernel.address, { token: READ_TOKEN });
  trader = new KernelClient(kernel.address, { token: TRADE_TOKEN });
  admin = new KernelClient(kernel.address, { token: ADMIN_TOKEN });
});

after(async () => {
  for (const client of [reader, trader, admin]) client?.close();
  if (kernel === undefined) return; // it never started: the hook's error says why
  const exitCode = await kernel.stop();
  assert.equal(exitCode, 0, `the kernel did not stop cleanly:\n${kernel?.log().slice(-2000)}`);
  for (const token of [READ_TOKEN, TRADE_TOKEN, ADMIN_TOKEN]) {
    assert.ok(!kernel.log().includes(token), "a token appeared in the kernel's log");
  }
});

/** Read a stream until `enough` says stop; the stream is cancelled either way. */
async function collect<T>(stream: AsyncIterable<T>, enough: (seen: T[]) => boolean, timeoutMs = 20_000): Promise<T[]> {
  const seen: T[] = [];
  const timer = setTimeout(() => (stream as { cancel?: () => void }).cancel?.(), timeoutMs);
  try {
    for await (const item of stream) {
      seen.push(item);
      if (enough(seen)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  if (!enough(seen)) assert.fail(`the stream ended after ${seen.length} messages without what was wanted`);
  return seen;
}

/** A book rebuilt from a snapshot and its deltas, keyed by exact price units. */
class LocalBook {
  bids = new Map<bigint, Decimal>();
  asks = new Map<bigint, Decimal>();
  sequence = 0n;

  apply(event: BookEvent): void {
    if (event.$case === "snapshot") {
      this.bids = new Map(event.value.bids.map((level) => [level.price!.units, level.size!]));
      this.asks = new Map(event.value.asks.map((level) => [level.price!.units, level.size!]));
      this.sequence = event.value.sequence;
    } else if (event.$case === "delta") {
      for (const [side, levels] of [
        [this.bids, event.value.bids],
        [this.asks, event.value.asks],
      ] as const) {
        for (const level of levels) {
          if (level.size!.units === 0n) side.delete(level.price!.units);
          else side.set(level.price!.units, level.size!);
        }
      }
      this.sequence = event.value.sequence;
    }
  }

  /** Levels as "price size" text, best first, as a snapshot lists them. */
  levels(side: "bids" | "asks"): string[] {
    const prices = [...this[side].keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (side === "bids") prices.reverse();
    return prices.map((price) => `${formatDecimal({ units: price, precision: PRICE_PRECISION })} ${formatDecimal(this[side].get(price)!)}`);
  }
}

function levelsText(levels: proto.marketData.Level[]): string[] {
  return levels.map((level) => `${formatDecimal(level.price!)} ${formatDecimal(level.size!)}`);
}

/**
 * Give the kernel time to subscribe a stream just opened. A stream starts
 * when the kernel's handler runs, and gRPC tells the client nothing until
 * the first message, so an order sent at once could be missed by it.
 */
async function streamStarted(): Promise<void> {
  await reader.status();
  await new Promise((resolve) => setTimeout(resolve, 500));
}

async function touch(): Promise<{ bid: bigint; ask: bigint }> {
  const { snapshot } = await reader.bookSnapshot(...BTCUSDT, 1);
  return { bid: snapshot.bids[0].price!.units, ask: snapshot.asks[0].price!.units };
}

async function codeOf(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => assert.fail("the call succeeded"),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof ApiError, `not an ApiError: ${String(error)}`);
  return error.code;
}

describe("kernel and market data", () => {
  it("reports its version and an active kernel with a valid BTCUSDT book", async () => {
    const version = await reader.version();
    assert.equal(version.apiVersion, "v1");
    assert.match(version.kernelVersion, /^\d+\.\d+/);
    const status = await reader.status();
    assert.equal(status.tradingState, TradingState.TRADING_STATE_ACTIVE);
    assert.ok(status.uptimeNs > 0n);
    const book = status.books.find((info) => info.instrument?.symbol === "BTCUSDT");
    assert.equal(book?.state, proto.marketData.BookState.BOOK_STATE_VALID);
    const instruments = await reader.instruments("binance");
    const btc = instruments.find((instrument) => instrument.symbol === "BTCUSDT");
    assert.equal(btc?.pricePrecision, PRICE_PRECISION);
    assert.deepEqual(btc?.tick, { units: 1_000_000n, precision: 8 });
  });

  it("streams a book that, rebuilt from its snapshot and deltas, equals the kernel's book level for level", async () => {
    const stream = reader.streamBooks([BTCUSDT]);
    const local = new LocalBook();
    let kernelBook: proto.marketData.BookSnapshot | undefined;
    let matchedAt: bigint | undefined;
    let deltas = 0;
    for await (const event of stream) {
      if (event.$case === "status") continue;
      local.apply(event);
      if (event.$case === "delta") {
        deltas += 1;
        assert.ok(event.value.sequence >= event.value.firstSequence);
      }
      // Ask the kernel for its book once the stream is running, then compare
      // when the rebuilt book reaches the same update id.
      kernelBook ??= (await reader.bookSnapshot(...BTCUSDT)).snapshot;
      if (local.sequence === kernelBook.sequence) {
        assert.deepEqual(local.levels("bids"), levelsText(kernelBook.bids));
        assert.deepEqual(local.levels("asks"), levelsText(kernelBook.asks));
        matchedAt = local.sequence;
      }
      if (matchedAt !== undefined && deltas >= 3) break;
      assert.ok(local.sequence <= kernelBook.sequence || matchedAt !== undefined, "the stream skipped the snapshot's update id");
    }
    assert.ok(matchedAt !== undefined && deltas >= 3);
    const [bestBid] = local.levels("bids");
    const [bestAsk] = local.levels("asks");
    assert.ok(parseDecimal(bestBid.split(" ")[0]).units < parseDecimal(bestAsk.split(" ")[0]).units, "crossed book");
  });

  it("streams quotes with bid below ask at the instrument's precision", async () => {
    const [quote] = await collect(reader.streamQuotes([BTCUSDT]), (seen) => seen.length >= 1);
    assert.equal(quote.symbol, "BTCUSDT");
    assert.equal(quote.bidPrice?.precision, PRICE_PRECISION);
    assert.ok(quote.bidPrice!.units < quote.askPrice!.units);
    assert.ok(quote.bidSize!.units > 0n && quote.askSize!.units > 0n);
  });

  it("streams public trades from the replay", async () => {
    const trades = await collect(reader.streamTrades([BTCUSDT]), (seen) => seen.length >= 2);
    for (const trade of trades) {
      assert.equal(trade.venue, "binance");
      assert.ok(trade.price!.units > 0n && trade.size!.units > 0n);
      assert.notEqual(trade.tradeId, "");
    }
  });

  it("refuses an unknown instrument with NOT_FOUND", async () => {
    assert.equal(await codeOf(reader.bookSnapshot("binance", "NOPEUSDT")), "NOT_FOUND");
  });
});

describe("orders, fills and the portfolio", () => {
  it("rests an order far from the market, lists it, and cancels it", async () => {
    const { bid } = await touch();
    const price = bid - 100n * USDT;
    const events = trader.streamOrderEvents({ strategy: "api" });
    await streamStarted();
    const order = {
      clientOrderId: `ts-rest-${Date.now()}`,
      venue: "binance",
      symbol: "BTCUSDT",
      side: "buy",
      quantity: "0.001",
      price: { units: price, precision: PRICE_PRECISION },
    } as const;
    const submitted = await trader.submitOrder(order);
    assert.equal(submitted.replayed, false);
    assert.equal(submitted.denialReason, DenialReason.DENIAL_REASON_UNSPECIFIED);
    assert.equal(submitted.order?.strategy, "api");
    assert.deepEqual(submitted.order?.price, { units: price, precision: PRICE_PRECISION });
    assert.equal(rescale(submitted.order!.quantity!, 3), 1n);

    const again = await trader.submitOrder(order);
    assert.equal(again.replayed, true, "the same client order id must not place a second order");

    const open = await reader.listOrders({ openOnly: true, filter: { strategy: "api" } });
    assert.ok(open.some((listed) => listed.clientOrderId === order.clientOrderId));

    const canceled = await trader.cancelOrder(order.clientOrderId);
    assert.ok(
      [OrderStatus.ORDER_STATUS_PENDING_CANCEL, OrderStatus.ORDER_STATUS_CANCELED].includes(canceled.status),
      `unexpected status ${canceled.status}`,
    );
    const seen = await collect(events, (changes) =>
      changes.some((change) => change.order?.status === OrderStatus.ORDER_STATUS_CANCELED),
    );
    const statuses = seen.filter((change) => change.order?.clientOrderId === order.clientOrderId).map((change) => change.order!.status);
    assert.ok(statuses.includes(OrderStatus.ORDER_STATUS_NEW), `no NEW in ${statuses}`);
    assert.equal(statuses.at(-1), OrderStatus.ORDER_STATUS_CANCELED);
    const stillOpen = await reader.listOrders({ openOnly: true, filter: { strategy: "api" } });
    assert.ok(!stillOpen.some((listed) => listed.clientOrderId === order.clientOrderId));
    assert.equal(await codeOf(trader.cancelOrder("ts-never-submitted")), "NOT_FOUND");
  });

  it("fills a marketable order, streams its fills exactly and books the position", async () => {
    const fills = reader.streamFills({ strategy: "api" });
    await streamStarted();
    const { ask } = await touch();
    const limit = ask + 50n * USDT; // walks the book up to 50 USDT above the touch
    const clientOrderId = `ts-take-${Date.now()}`;
    const submitted = await trader.submitOrder({
      clientOrderId,
      venue: "binance",
      symbol: "BTCUSDT",
      side: OrderSide.ORDER_SIDE_BUY,
      orderType: "limit",
      timeInForce: "ioc",
      quantity: parseDecimal("0.00100000"),
      price: formatDecimal({ units: limit, precision: PRICE_PRECISION }),
    });
    assert.equal(submitted.denialReason, DenialReason.DENIAL_REASON_UNSPECIFIED, submitted.order?.reason);

    const mine = (await collect(fills, (seen) => seen.some((fill) => fill.fill?.clientOrderId === clientOrderId && fill.fill.leavesQuantity?.units === 0n)))
      .map((message) => message.fill!)
      .filter((fill) => fill.clientOrderId === clientOrderId);
    let filled = 0n;
    let notional = 0n; // price units × size units: 16 decimals
    for (const fill of mine) {
      assert.ok(fill.price!.units <= limit, "filled above the limit");
      assert.equal(fill.fee?.precision, 8);
      filled += fill.quantity!.units;
      notional += fill.price!.units * fill.quantity!.units;
    }
    assert.equal(filled, 100_000n); // 0.001 BTC at 8 decimals, to the unit

    const order = await waitFor(async () => {
      const [found] = (await reader.listOrders({ filter: { strategy: "api" } })).filter((listed) => listed.clientOrderId === clientOrderId);
      return found?.status === OrderStatus.ORDER_STATUS_FILLED ? found : undefined;
    }, 10_000);
    assert.deepEqual(order.filledQuantity, { units: 100_000n, precision: 8 });
    assert.equal(rescale(amountToDecimal(order.filledNotional)!, 16), notional);

    const position = (await reader.positions({ symbol: "BTCUSDT" })).find((held) => held.venue === "paper");
    assert.ok(position, "no paper BTCUSDT position");
    assert.deepEqual(position.quantity, { units: 100_000n, precision: 8 });
    const pnl = await reader.pnl();
    assert.match(pnl.net!.value, /^-?\d+\.\d{18}$/);
  });

  it("cancels every working order of a filter at once", async () => {
    const { bid } = await touch();
    const ids = [`ts-all-a-${Date.now()}`, `ts-all-b-${Date.now()}`];
    for (const [index, clientOrderId] of ids.entries()) {
      await trader.submitOrder({
        clientOrderId,
        venue: "binance",
        symbol: "BTCUSDT",
        side: "buy",
        quantity: "0.001",
        price: { units: bid - BigInt(200 + index) * USDT, precision: PRICE_PRECISION },
      });
    }
    const canceled = await trader.cancelAll({ strategy: "api" });
    assert.deepEqual([...canceled].sort(), [...ids].sort());
  });
});

describe("tokens and scopes", () => {
  it("refuses a wrong token with UNAUTHENTICATED, for calls and streams", async () => {
    const stranger = new KernelClient(kernel.address, { token: "not-a-token" });
    try {
      assert.equal(await codeOf(stranger.status()), "UNAUTHENTICATED");
      assert.equal(await codeOf(collect(stranger.streamBooks([BTCUSDT]), () => true)), "UNAUTHENTICATED");
    } finally {
      stranger.close();
    }
  });

  it("refuses a read token trading with PERMISSION_DENIED, and places nothing", async () => {
    const clientOrderId = `ts-read-${Date.now()}`;
    const { bid } = await touch();
    const refused = reader.submitOrder({
      clientOrderId,
      venue: "binance",
      symbol: "BTCUSDT",
      side: "buy",
      quantity: "0.001",
      price: { units: bid - 100n * USDT, precision: PRICE_PRECISION },
    });
    assert.equal(await codeOf(refused), "PERMISSION_DENIED");
    assert.equal(await codeOf(reader.halt("read token")), "PERMISSION_DENIED");
    const listed = await reader.listOrders();
    assert.ok(!listed.some((order) => order.clientOrderId === clientOrderId));
  });

  it("halts with a trade token, denies orders while halted, and resumes only with admin", async () => {
    const halted = await trader.halt("drill from the TypeScript tests");
    assert.equal(halted.state, TradingState.TRADING_STATE_HALTED);
    assert.match(halted.reason, /drill from the TypeScript tests/);
    const { bid } = await touch();
    const denied = await trader.submitOrder({
      clientOrderId: `ts-halted-${Date.now()}`,
      venue: "binance",
      symbol: "BTCUSDT",
      side: "buy",
      quantity: "0.001",
      price: { units: bid - 100n * USDT, precision: PRICE_PRECISION },
    });
    assert.equal(denied.order?.status, OrderStatus.ORDER_STATUS_DENIED);
    assert.equal(denied.denialReason, DenialReason.DENIAL_REASON_TRADING_HALTED);
    assert.equal(await codeOf(trader.resume("trade token")), "PERMISSION_DENIED");
    const resumed = await admin.resume("drill over");
    assert.equal(resumed.state, TradingState.TRADING_STATE_ACTIVE);
    const risk = await reader.riskState();
    assert.equal(risk.state, TradingState.TRADING_STATE_ACTIVE);
    const haltedDenials = risk.denials.find((count) => count.reason === DenialReason.DENIAL_REASON_TRADING_HALTED);
    assert.ok((haltedDenials?.count ?? 0n) >= 1n);
  });

  it("refuses a request with a decimal given as a JS number before it is sent", async () => {
    await assert.rejects(
      () =>
        trader.submitOrder({
          clientOrderId: "ts-number",
          venue: "binance",
          symbol: "BTCUSDT",
          side: "buy",
          quantity: 0.001 as unknown as string,
          price: "60000",
        }),
      /quantity: expected decimal text/,
    );
  });
});
