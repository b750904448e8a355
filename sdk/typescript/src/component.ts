// Out-of-process components in TypeScript: serve `ComponentService`, and the
// kernel dials in (docs/components.md).
//
// The kernel is the gRPC client. It calls Describe, then opens one Session:
// kernel messages in (market data, the component's orders, command results,
// timers), component messages out (order intents, cancels, timers, signals,
// logs, heartbeats). A component only ever acts through intents; the kernel
// gives each a client order id, runs it through risk and journals it.

import * as grpc from "@grpc/grpc-js";

import { type DecimalInput, toDecimal } from "./decimal";
import {
  type CommandResult,
  ComponentKind,
  type ComponentServiceServer,
  ComponentServiceService,
  type DescribeRequest,
  DescribeResponse,
  LogLevel,
  type SessionRequest,
  SessionResponse,
  type SessionStart,
  type Shutdown,
  type TimerFired,
} from "./generated/tradekernel/v1/components";
import {
  type Bar,
  type BookDelta,
  type BookSnapshot,
  type BookStatus,
  MarketDataKind,
  type Quote,
  type Trade,
} from "./generated/tradekernel/v1/market_data";
import { type OrderEvent, OrderSide, OrderType, type OrderUpdate, TimeInForce } from "./generated/tradekernel/v1/orders";
import type { Instrument } from "./generated/tradekernel/v1/types";

/** Set by the kernel for a spawned command: where to listen ("127.0.0.1:0"). */
export const LISTEN_ENV = "TRADEKERNEL_COMPONENT_LISTEN";
/** A spawned command prints this and its host:port on stdout once it serves. */
export const READY_PREFIX = "tradekernel component listening on ";

const API_VERSION = "v1";
const KINDS = {
  strategy: ComponentKind.COMPONENT_KIND_STRATEGY,
  detector: ComponentKind.COMPONENT_KIND_DETECTOR,
  model: ComponentKind.COMPONENT_KIND_MODEL,
  signal: ComponentKind.COMPONENT_KIND_SIGNAL,
} as const;
const DATA_KINDS = {
  book: MarketDataKind.MARKET_DATA_KIND_BOOK,
  quote: MarketDataKind.MARKET_DATA_KIND_QUOTE,
  trade: MarketDataKind.MARKET_DATA_KIND_TRADE,
  bar: MarketDataKind.MARKET_DATA_KIND_BAR,
  book_status: MarketDataKind.MARKET_DATA_KIND_BOOK_STATUS,
} as const;
const LOG_LEVELS = {
  debug: LogLevel.LOG_LEVEL_DEBUG,
  info: LogLevel.LOG_LEVEL_INFO,
  warning: LogLevel.LOG_LEVEL_WARNING,
  error: LogLevel.LOG_LEVEL_ERROR,
} as const;

/** Market data for some instruments: `{ instruments: [["binance", "BTCUSDT"]], kinds: ["book"] }`. */
export interface SubscriptionInput {
  instruments: readonly (readonly [venue: string, symbol: string])[];
  kinds: readonly (keyof typeof DATA_KINDS)[];
}

/** An order the component wants; the kernel names it and answers with its client order id. */
export interface IntentInput {
  venue: string;
  symbol: string;
  side: "buy" | "sell";
  orderType?: "limit" | "market";
  quantity: DecimalInput;
  price?: DecimalInput;
  timeInForce?: "gtc" | "ioc" | "fok" | "post_only";
  /** Free text to recognise the order by in logs. */
  tag?: string;
}

type Awaitable = void | Promise<void>;

/**
 * What a component is and what it does with each kernel message. Every
 * callback is optional; they run one at a time, in the order the kernel sent
 * the messages, and a callback that throws is reported to the kernel's log
 * while the session goes on.
 */
export interface ComponentDefinition {
  name: string;
  version: string;
  kind: keyof typeof KINDS;
  description?: string;
  /** Market data to deliver from the start of every session. */
  subscriptions?: readonly SubscriptionInput[];

  onStart?(context: ComponentContext): Awaitable;
  onBookSnapshot?(snapshot: BookSnapshot, context: ComponentContext): Awaitable;
  onBookDelta?(delta: BookDelta, context: ComponentContext): Awaitable;
  onQuote?(quote: Quote, context: ComponentContext): Awaitable;
  onTrade?(trade: Trade, context: ComponentContext): Awaitable;
  onBar?(bar: Bar, context: ComponentContext): Awaitable;
  onBookStatus?(status: BookStatus, context: ComponentContext): Awaitable;
  /** The order manager's view of one of the component's orders after a change. */
  onOrderUpdate?(update: OrderUpdate, context: ComponentContext): Awaitable;
  /** A venue event about one of the component's orders; fills are `$case: "filled"`. */
  onOrderEvent?(event: OrderEvent, context: ComponentContext): Awaitable;
  onCommandResult?(result: CommandResult, context: ComponentContext): Awaitable;
  onTimer?(timer: TimerFired, context: ComponentContext): Awaitable;
  onShutdown?(shutdown: Shutdown, context: ComponentContext): Awaitable;
}

/** A command the kernel refused (an invalid intent, an unknown instrument, ...). */
export class CommandRefused extends Error {
  override name = "CommandRefused";

  constructor(
    readonly requestId: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What a component can do within one session. Commands return promises that
 * settle with the kernel's `CommandResult`: an intent's resolves to the
 * client order id the kernel gave it (the order's fate follows as order
 * updates), a refused command rejects with `CommandRefused`.
 */
export class ComponentContext {
  /** The kernel's clock at the last message (market time in a replay), in nanoseconds. */
  clock = 0n;
  /** The session's first message: ids, configuration and heartbeat interval. */
  readonly start: SessionStart;
  /** The operator's settings for this component (`[components.settings]`), parsed. */
  readonly settings: Record<string, unknown>;
  /** Every instrument the kernel knows, by "venue.symbol". */
  readonly instruments: ReadonlyMap<string, Instrument>;

  private nextRequest = 0;
  private readonly waiting = new Map<string, { resolve: (id: string) => void; reject: (error: Error) => void }>();

  constructor(
    start: SessionStart,
    private readonly send: (message: SessionResponse) => void,
  ) {
    this.start = start;
    this.settings = start.configJson === "" ? {} : (JSON.parse(start.configJson) as Record<string, unknown>);
    this.instruments = new Map(start.instruments.map((item) => [`${item.venue}.${item.symbol}`, item]));
  }

  /** Place an order through the kernel's risk checks; resolves to its client order id. */
  submit(intent: IntentInput): Promise<string> {
    return this.command({
      $case: "orderIntent",
      value: {
        venue: intent.venue,
        symbol: intent.symbol,
        side: intent.side === "buy" ? OrderSide.ORDER_SIDE_BUY : OrderSide.ORDER_SIDE_SELL,
        orderType: (intent.orderType ?? "limit") === "limit" ? OrderType.ORDER_TYPE_LIMIT : OrderType.ORDER_TYPE_MARKET,
        quantity: toDecimal(intent.quantity, "quantity"),
        price: intent.price === undefined ? undefined : toDecimal(intent.price, "price"),
        timeInForce: TIMES_IN_FORCE[intent.timeInForce ?? "gtc"],
        tag: intent.tag ?? "",
      },
    });
  }

  /** Ask for the working remainder of one of the component's orders to be cancelled. */
  cancel(clientOrderId: string): Promise<string> {
    return this.command({ $case: "cancel", value: { clientOrderId } });
  }

  /** Cancel every working order of the component, or only those on `symbol`. */
  cancelAll(symbol = ""): Promise<string> {
    return this.command({ $case: "cancelAll", value: { symbol } });
  }

  /** Receive more market data. */
  subscribe(subscription: SubscriptionInput): Promise<string> {
    return this.command({ $case: "subscribe", value: subscriptionMessage(subscription) });
  }

  /** Stop receiving some market data. */
  unsubscribe(subscription: SubscriptionInput): Promise<string> {
    return this.command({ $case: "unsubscribe", value: { subscription: subscriptionMessage(subscription) } });
  }

  /** Call `onTimer` every `intervalNs` of the kernel's clock. */
  setTimer(name: string, intervalNs: bigint): Promise<string> {
    return this.command({ $case: "setTimer", value: { name, intervalNs } });
  }

  cancelTimer(name: string): Promise<string> {
    return this.command({ $case: "cancelTimer", value: { name } });
  }

  /** Publish a named value the component computed. */
  signal(name: string, value: DecimalInput, about: { venue?: string; symbol?: string; tsEvent?: bigint } = {}): void {
    this.send(
      SessionResponse.fromPartial({
        message: {
          $case: "signal",
          value: {
            name,
            venue: about.venue ?? "",
            symbol: about.symbol ?? "",
            value: toDecimal(value, "value"),
            tsEvent: about.tsEvent ?? this.clock,
          },
        },
      }),
    );
  }

  /** Write to the kernel's log under the component's name. */
  log(level: keyof typeof LOG_LEVELS, message: string, fields: Record<string, string> = {}): void {
    this.send(SessionResponse.fromPartial({ message: { $case: "log", value: { level: LOG_LEVELS[level], message, fields } } }));
  }

  /** @internal Settle the command a `CommandResult` answers. */
  settle(result: CommandResult): void {
    const waiter = this.waiting.get(result.requestId);
    if (waiter === undefined) return;
    this.waiting.delete(result.requestId);
    if (result.error !== "") waiter.reject(new CommandRefused(result.requestId, result.error));
    else waiter.resolve(result.clientOrderId);
  }

  /** @internal The session ended: commands still waiting will never be answered. */
  abandon(reason: string): void {
    for (const [requestId, waiter] of this.waiting) waiter.reject(new CommandRefused(requestId, reason));
    this.waiting.clear();
  }

  private command(message: NonNullable<SessionResponse["message"]>): Promise<string> {
    // Unique for the session's life; the kernel prefixes the component's name
    // to make the client order id, and a resent id places nothing.
    const requestId = `${this.start.sessionId}-${++this.nextRequest}`;
    const answered = new Promise<string>((resolve, reject) => this.waiting.set(requestId, { resolve, reject }));
    // Nobody has to await a command: a refusal is logged by the kernel anyway.
    answered.catch(() => undefined);
    this.send(SessionResponse.fromPartial({ requestId, message } as SessionResponse));
    return answered;
  }
}

const TIMES_IN_FORCE = {
  gtc: TimeInForce.TIME_IN_FORCE_GTC,
  ioc: TimeInForce.TIME_IN_FORCE_IOC,
  fok: TimeInForce.TIME_IN_FORCE_FOK,
  post_only: TimeInForce.TIME_IN_FORCE_POST_ONLY,
} as const;

function subscriptionMessage(subscription: SubscriptionInput) {
  return {
    instruments: subscription.instruments.map(([venue, symbol]) => ({ venue, symbol })),
    kinds: subscription.kinds.map((kind) => DATA_KINDS[kind]),
  };
}

/** The `ComponentService` implementation of one component definition. */
export function componentService(definition: ComponentDefinition): ComponentServiceServer {
  return {
    describe(call: grpc.ServerUnaryCall<DescribeRequest, DescribeResponse>, callback: grpc.sendUnaryData<DescribeResponse>) {
      callback(
        null,
        DescribeResponse.fromPartial({
          name: definition.name,
          version: definition.version,
          kind: KINDS[definition.kind],
          apiVersion: API_VERSION,
          subscriptions: (definition.subscriptions ?? []).map(subscriptionMessage),
          description: definition.description ?? "",
        }),
      );
    },
    session(call: grpc.ServerDuplexStream<SessionRequest, SessionResponse>) {
      new Session(definition, call).run();
    },
  };
}

/** One session: kernel messages through the callbacks, in order, and heartbeats back. */
class Session {
  private context: ComponentContext | undefined;
  private lastSequence = 0n;
  private heartbeat: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private ended = false;

  constructor(
    private readonly definition: ComponentDefinition,
    private readonly call: grpc.ServerDuplexStream<SessionRequest, SessionResponse>,
  ) {}

  run(): void {
    this.call.on("data", (message: SessionRequest) => {
      // A command's promise settles as soon as its result arrives, so a
      // callback may await a command without holding up its own answer.
      if (message.message?.$case === "commandResult") this.context?.settle(message.message.value);
      // Chain the callbacks so an async one finishes before the next message.
      this.queue = this.queue.then(() => this.dispatch(message));
    });
    this.call.on("end", () => this.end("the kernel closed the session"));
    this.call.on("error", () => this.end("the session failed"));
    this.call.on("cancelled", () => this.end("the kernel cancelled the session"));
  }

  private send(message: SessionResponse): void {
    if (!this.ended) this.call.write(message);
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
    this.context?.abandon(reason);
    this.call.end();
  }

  private async dispatch(message: SessionRequest): Promise<void> {
    if (this.ended) return;
    this.lastSequence = message.sequence;
    const body = message.message;
    if (body === undefined) return;
    if (body.$case === "start") {
      this.context = new ComponentContext(body.value, (response) => this.send(response));
      this.context.clock = message.clock;
      const interval = Math.max(body.value.heartbeatIntervalMs, 10);
      this.heartbeat = setInterval(() => {
        this.send(SessionResponse.fromPartial({ message: { $case: "heartbeat", value: { lastSequence: this.lastSequence } } }));
      }, interval);
      await this.guard("onStart", () => this.definition.onStart?.(this.context!));
      return;
    }
    const context = this.context;
    if (context === undefined) return; // nothing comes before `start`
    context.clock = message.clock;
    const handlers = this.definition;
    switch (body.$case) {
      case "bookSnapshot":
        return this.guard("onBookSnapshot", () => handlers.onBookSnapshot?.(body.value, context));
      case "bookDelta":
        return this.guard("onBookDelta", () => handlers.onBookDelta?.(body.value, context));
      case "quote":
        return this.guard("onQuote", () => handlers.onQuote?.(body.value, context));
      case "trade":
        return this.guard("onTrade", () => handlers.onTrade?.(body.value, context));
      case "bar":
        return this.guard("onBar", () => handlers.onBar?.(body.value, context));
      case "bookStatus":
        return this.guard("onBookStatus", () => handlers.onBookStatus?.(body.value, context));
      case "orderUpdate":
        return this.guard("onOrderUpdate", () => handlers.onOrderUpdate?.(body.value, context));
      case "orderEvent":
        return this.guard("onOrderEvent", () => handlers.onOrderEvent?.(body.value, context));
      case "commandResult":
        return this.guard("onCommandResult", () => handlers.onCommandResult?.(body.value, context));
      case "timer":
        return this.guard("onTimer", () => handlers.onTimer?.(body.value, context));
      case "shutdown":
        await this.guard("onShutdown", () => handlers.onShutdown?.(body.value, context));
        return this.end(`shutdown: ${body.value.reason}`);
    }
  }

  private async guard(callback: string, run: () => Awaitable | undefined): Promise<void> {
    try {
      await run();
    } catch (error) {
      // The kernel counts records with a `callback` field as callback errors.
      this.context?.log("error", `${callback} raised: ${error instanceof Error ? error.message : String(error)}`, {
        callback,
      });
    }
  }
}

/** A component serving on a port. */
export interface ServedComponent {
  /** "host:port" actually bound. */
  address: string;
  server: grpc.Server;
  /** Stop serving; sessions in flight are cancelled after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Serve `definition` on `address` ("127.0.0.1:0" picks a free port). */
export function serveComponent(
  definition: ComponentDefinition,
  address = "127.0.0.1:0",
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<ServedComponent> {
  const server = new grpc.Server();
  server.addService(ComponentServiceService, componentService(definition));
  const host = address.slice(0, address.lastIndexOf(":"));
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => {
      if (error) return reject(error);
      resolve({
        address: `${host}:${port}`,
        server,
        stop: (graceMs = 2000) =>
          new Promise<void>((done) => {
            const force = setTimeout(() => server.forceShutdown(), graceMs);
            server.tryShutdown(() => {
              clearTimeout(force);
              done();
            });
          }),
      });
    });
  });
}

/**
 * Run a component as the kernel's spawned command (`command = ["node", ...]`)
 * or on its own: listen on $TRADEKERNEL_COMPONENT_LISTEN (else `fallback`),
 * print the ready line the kernel waits for, and stop on SIGTERM or SIGINT.
 */
export async function runComponent(definition: ComponentDefinition, fallback = "127.0.0.1:50061"): Promise<ServedComponent> {
  const served = await serveComponent(definition, process.env[LISTEN_ENV] || fallback);
  process.stdout.write(`${READY_PREFIX}${served.address}\n`);
  const stop = () => {
    served.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  return served;
}
