// An out-of-process strategy in TypeScript: trade the queue imbalance at the touch.
//
// When the size at the best bid outweighs the size at the best ask by
// `threshold_bps` of their sum, buy `quantity` at the ask, immediate-or-cancel;
// in the opposite case sell back what it holds at the bid. One order at a time,
// at most `max_position` held, no shorts, `cooldown_ms` of market time between
// orders. All arithmetic is on bigint units at the instrument's precisions.
//
// Run by the kernel as a spawned command:
//
//   [[components]]
//   name = "ts_imbalance"
//   command = ["node", "sdk/typescript/dist/examples/quote_imbalance.js"]
//   [components.settings]
//   venue = "binance"
//   symbol = "BTCUSDT"
//   quantity = "0.001"
//   max_position = "0.003"
//   threshold_bps = 6000
//   cooldown_ms = 2000

import {
  type ComponentContext,
  type ComponentDefinition,
  type Decimal,
  OrderSide,
  OrderStatus,
  formatDecimal,
  parseDecimal,
  type proto,
  runComponent,
} from "../src";

interface Settings {
  venue: string;
  symbol: string;
  quantity: Decimal;
  maxPosition: Decimal;
  thresholdBps: bigint;
  cooldownNs: bigint;
}

const FINAL = new Set([
  OrderStatus.ORDER_STATUS_FILLED,
  OrderStatus.ORDER_STATUS_CANCELED,
  OrderStatus.ORDER_STATUS_REJECTED,
  OrderStatus.ORDER_STATUS_EXPIRED,
  OrderStatus.ORDER_STATUS_DENIED,
]);

function readSettings(context: ComponentContext): Settings {
  const raw = context.settings;
  const text = (key: string): string => {
    const value = raw[key];
    if (typeof value !== "string") throw new Error(`settings.${key}: expected text, got ${JSON.stringify(value)}`);
    return value;
  };
  const integer = (key: string, fallback: number): bigint => {
    const value = raw[key] ?? fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      throw new Error(`settings.${key}: expected a non-negative integer, got ${JSON.stringify(value)}`);
    }
    return BigInt(value);
  };
  const venue = text("venue");
  const symbol = text("symbol");
  const instrument = context.instruments.get(`${venue}.${symbol}`);
  if (instrument === undefined) throw new Error(`settings: the kernel does not know ${venue}.${symbol}`);
  const sizes = instrument.sizePrecision;
  return {
    venue,
    symbol,
    quantity: parseDecimal(text("quantity"), sizes),
    maxPosition: parseDecimal(text("max_position"), sizes),
    thresholdBps: integer("threshold_bps", 6000),
    cooldownNs: integer("cooldown_ms", 1000) * 1_000_000n,
  };
}

/** The strategy's state for one session. */
class QuoteImbalance {
  /** Net position in size units, from the order updates of its own orders. */
  position: bigint;
  private readonly filled = new Map<string, bigint>();
  private working = false;
  private lastOrderAt: bigint | undefined;

  constructor(
    readonly settings: Settings,
    private readonly context: ComponentContext,
  ) {
    this.position = 0n;
  }

  onQuote(quote: proto.marketData.Quote): void {
    const { settings, context } = this;
    if (quote.venue !== settings.venue || quote.symbol !== settings.symbol) return;
    if (this.working) return;
    if (this.lastOrderAt !== undefined && context.clock - this.lastOrderAt < settings.cooldownNs) return;
    const bidSize = quote.bidSize?.units ?? 0n;
    const askSize = quote.askSize?.units ?? 0n;
    const total = bidSize + askSize;
    if (total === 0n) return;
    const quantity = settings.quantity.units;
    let side: "buy" | "sell" | undefined;
    if (bidSize * 10_000n >= settings.thresholdBps * total && this.position + quantity <= settings.maxPosition.units) {
      side = "buy";
    } else if (askSize * 10_000n >= settings.thresholdBps * total && this.position >= quantity) {
      side = "sell";
    }
    if (side === undefined) return;
    this.working = true;
    this.lastOrderAt = context.clock;
    context
      .submit({
        venue: settings.venue,
        symbol: settings.symbol,
        side,
        quantity: settings.quantity,
        price: side === "buy" ? quote.askPrice! : quote.bidPrice!,
        timeInForce: "ioc",
        tag: "imbalance",
      })
      .catch((error: Error) => {
        this.working = false;
        context.log("warning", `intent refused: ${error.message}`);
      });
  }

  onOrderUpdate(update: proto.orders.OrderUpdate): void {
    const filledNow = update.filledQuantity?.units ?? 0n;
    const change = filledNow - (this.filled.get(update.clientOrderId) ?? 0n);
    this.filled.set(update.clientOrderId, filledNow);
    if (change !== 0n) {
      this.position += update.side === OrderSide.ORDER_SIDE_BUY ? change : -change;
      const position = formatDecimal({ units: this.position, precision: this.settings.quantity.precision });
      this.context.log("info", `position ${position}`, { order: update.clientOrderId });
    }
    if (FINAL.has(update.status)) {
      this.working = false;
      this.filled.delete(update.clientOrderId);
    }
  }
}

let strategy: QuoteImbalance | undefined;

export const definition: ComponentDefinition = {
  name: "quote-imbalance",
  version: "0.1.0",
  kind: "strategy",
  description: "buys or sells at the touch when one side's queue outweighs the other",
  onStart(context) {
    strategy = new QuoteImbalance(readSettings(context), context);
    const { venue, symbol } = strategy.settings;
    return context.subscribe({ instruments: [[venue, symbol]], kinds: ["quote"] }).then(() => undefined);
  },
  onQuote: (quote) => strategy?.onQuote(quote),
  onOrderUpdate: (update) => strategy?.onOrderUpdate(update),
};

if (require.main === module) {
  runComponent(definition).catch((error: Error) => {
    console.error(`quote_imbalance: ${error.message}`);
    process.exit(1);
  });
}
