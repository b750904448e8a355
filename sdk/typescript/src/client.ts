// A typed client of the kernel's gRPC API over the generated grpc-js stubs.

import * as grpc from "@grpc/grpc-js";

import { type DecimalInput, toDecimal } from "./decimal";
import { ApiError } from "./errors";
import {
  GetConfigSummaryRequest,
  type GetConfigSummaryResponse,
  GetStatusRequest,
  type GetStatusResponse,
  GetVersionRequest,
  type GetVersionResponse,
  KernelServiceClient,
} from "./generated/tradekernel/v1/kernel";
import {
  type BookSnapshot,
  type BookState,
  GetBookSnapshotRequest,
  ListInstrumentsRequest,
  MarketDataServiceClient,
  type Quote,
  StreamBooksRequest,
  type StreamBooksResponse,
  StreamQuotesRequest,
  StreamTradesRequest,
  type Trade,
} from "./generated/tradekernel/v1/market_data";
import {
  CancelAllOrdersRequest,
  CancelOrderRequest,
  ListOrdersRequest,
  type OrderFilter,
  OrderServiceClient,
  OrderSide,
  OrderType,
  type OrderUpdate,
  StreamFillsRequest,
  type StreamFillsResponse,
  StreamOrderEventsRequest,
  type StreamOrderEventsResponse,
  SubmitOrderRequest,
  type SubmitOrderResponse,
  TimeInForce,
} from "./generated/tradekernel/v1/orders";
import {
  ListPluginsRequest,
  type PluginInfo,
  PluginServiceClient,
} from "./generated/tradekernel/v1/plugins";
import {
  GetPnlRequest,
  GetPositionsRequest,
  type Pnl,
  PortfolioServiceClient,
  type Position,
  StreamPortfolioRequest,
  type StreamPortfolioResponse,
} from "./generated/tradekernel/v1/portfolio";
import {
  GetLimitsRequest,
  type GetLimitsResponse,
  GetRiskStateRequest,
  HaltRequest,
  ResumeRequest,
  RiskServiceClient,
  type RiskState,
  TradingState,
} from "./generated/tradekernel/v1/risk";
import type { Instrument, InstrumentId } from "./generated/tradekernel/v1/types";

/** How to reach the kernel. */
export interface KernelClientOptions {
  /** Bearer token sent with every call (`authorization: Bearer <token>`). */
  token: string;
  /** Deadline of unary calls in milliseconds; 10 000 by default. Streams have none. */
  timeoutMs?: number;
  /** Transport credentials; plaintext by default (the kernel serves loopback only). */
  credentials?: grpc.ChannelCredentials;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

/** An instrument as `[venue, symbol]` or an `InstrumentId`. */
export type InstrumentRef = readonly [venue: string, symbol: string] | InstrumentId;

/** One event of a book stream: narrow on `$case` ("snapshot", "delta", "status"). */
export type BookEvent = NonNullable<StreamBooksResponse["event"]>;

/** A new order. Prices and sizes are decimal text ("0.001") or exact `Decimal`s. */
export interface OrderInput {
  /** Chosen by the caller, unique per order: the idempotency key. */
  clientOrderId: string;
  venue: string;
  symbol: string;
  side: "buy" | "sell" | OrderSide;
  orderType?: "limit" | "market" | OrderType;
  quantity: DecimalInput;
  /** Limit price; leave out for market orders. */
  price?: DecimalInput;
  timeInForce?: "gtc" | "ioc" | "fok" | "post_only" | TimeInForce;
}

/**
 * A server stream as an async iterable. Breaking out of `for await` or
 * calling `cancel()` ends the call; a failure of the call is thrown from the
 * loop as an `ApiError`.
 */
export class Subscription<T> implements AsyncIterable<T> {
  private cancelled = false;

  constructor(
    private readonly call: grpc.ClientReadableStream<unknown>,
    private readonly pick: (message: never) => T | undefined = (message) => message,
  ) {}

  /** End the stream; a loop over it finishes without an error. */
  cancel(): void {
    this.cancelled = true;
    this.call.cancel();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for await (const message of this.call) {
        const picked = this.pick(message as never);
        if (picked !== undefined) yield picked;
      }
    } catch (error) {
      if (this.cancelled && (error as { code?: unknown }).code === grpc.status.CANCELLED) return;
      throw ApiError.from(error);
    } finally {
      this.call.cancel();
    }
  }
}

type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Response) => void,
) => grpc.ClientUnaryCall;

/** A generated message type's `fromPartial`, used to fill in request defaults. */
interface RequestType<Request> {
  fromPartial(value: DeepPartial<Request>): Request;
}

// Loose enough for every generated request: nested messages may be partial too.
type DeepPartial<T> = T extends bigint | string | number | boolean | undefined
  ? T
  : T extends readonly (infer Element)[]
    ? DeepPartial<Element>[]
    : { [Key in keyof T]?: DeepPartial<T[Key]> };

type StreamMethod<Request, Response> = (
  request: Request,
  metadata: grpc.Metadata,
  options?: Partial<grpc.CallOptions>,
) => grpc.ClientReadableStream<Response>;

const SIDES = { buy: OrderSide.ORDER_SIDE_BUY, sell: OrderSide.ORDER_SIDE_SELL } as const;
const ORDER_TYPES = { limit: OrderType.ORDER_TYPE_LIMIT, market: OrderType.ORDER_TYPE_MARKET } as const;
const TIMES_IN_FORCE = {
  gtc: TimeInForce.TIME_IN_FORCE_GTC,
  ioc: TimeInForce.TIME_IN_FORCE_IOC,
  fok: TimeInForce.TIME_IN_FORCE_FOK,
  post_only: TimeInForce.TIME_IN_FORCE_POST_ONLY,
} as const;

function instrumentId(reference: InstrumentRef): InstrumentId {
  if (Array.isArray(reference)) {
    const [venue, symbol] = reference as readonly [string, string];
    return { venue, symbol };
  }
  const { venue, symbol } = reference as InstrumentId;
  return { venue, symbol };
}

function named<T>(table: Record<string, T>, value: string | T, field: string): T {
  if (typeof value !== "string") return value;
  if (!(value in table)) {
    throw new TypeError(`${field}: expected one of ${Object.keys(table).join(", ")}, got ${value}`);
  }
  return table[value];
}

/**
 * The kernel's API in one object: every call carries the bearer token, unary
 * calls time out after `timeoutMs`, and failures are `ApiError`s.
 *
 * Answers are the generated messages: prices and sizes are `Decimal`s with
 * bigint units, money is `Amount` text, timestamps are bigint nanoseconds.
 */
export class KernelClient {
  readonly kernel: KernelServiceClient;
  readonly risk: RiskServiceClient;
  readonly orders: OrderServiceClient;
  readonly marketData: MarketDataServiceClient;
  readonly portfolio: PortfolioServiceClient;
  readonly plugins: PluginServiceClient;

  private readonly channel: grpc.Channel;
  private readonly token: string;
  private readonly timeoutMs: number;

  constructor(address: string, options: KernelClientOptions) {
    if (!options.token) throw new TypeError("token: required");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.channel = new grpc.Channel(address, credentials, options.channelOptions ?? {});
    const shared = { channelOverride: this.channel };
    this.kernel = new KernelServiceClient(address, credentials, shared);
    this.risk = new RiskServiceClient(address, credentials, shared);
    this.orders = new OrderServiceClient(address, credentials, shared);
    this.marketData = new MarketDataServiceClient(address, credentials, shared);
    this.portfolio = new PortfolioServiceClient(address, credentials, shared);
    this.plugins = new PluginServiceClient(address, credentials, shared);
  }

  /** Close the channel; calls in flight fail with CANCELLED or UNAVAILABLE. */
  close(): void {
    this.channel.close();
  }

  /** The metadata every call carries; pass it when calling the raw stubs above. */
  metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${this.token}`);
    return metadata;
  }

  // -- kernel ----------------------------------------------------------------

  /** Versions of the kernel and its APIs. */
  version(): Promise<GetVersionResponse> {
    return this.unary(this.kernel, this.kernel.getVersion, GetVersionRequest, {});
  }

  /** Uptime, components, books and trading state. */
  status(): Promise<GetStatusResponse> {
    return this.unary(this.kernel, this.kernel.getStatus, GetStatusRequest, {});
  }

  /** What the running configuration sets, secrets left out. */
  configSummary(): Promise<GetConfigSummaryResponse> {
    return this.unary(this.kernel, this.kernel.getConfigSummary, GetConfigSummaryRequest, {});
  }

  // -- risk ------------------------------------------------------------------

  /** The trading state and the risk engine's counters. */
  async riskState(): Promise<RiskState> {
    return required((await this.unary(this.risk, this.risk.getRiskState, GetRiskStateRequest, {})).state, "state");
  }

  /** Halt trading and cancel every working order (scope `trade`). */
  async halt(reason: string): Promise<RiskState> {
    return required((await this.unary(this.risk, this.risk.halt, HaltRequest, { reason })).state, "state");
  }

  /** Return to ACTIVE, or REDUCING, trading (scope `admin`). */
  async resume(reason: string, state: "active" | "reducing" = "active"): Promise<RiskState> {
    const wanted = state === "active" ? TradingState.TRADING_STATE_ACTIVE : TradingState.TRADING_STATE_REDUCING;
    return required((await this.unary(this.risk, this.risk.resume, ResumeRequest, { reason, state: wanted })).state, "state");
  }

  /** The limits in force and their revision. */
  limits(): Promise<GetLimitsResponse> {
    return this.unary(this.risk, this.risk.getLimits, GetLimitsRequest, {});
  }

  // -- market data -----------------------------------------------------------

  /** Instruments the kernel has books for, with their precisions; `venue` filters. */
  async instruments(venue = ""): Promise<Instrument[]> {
    return (await this.unary(this.marketData, this.marketData.listInstruments, ListInstrumentsRequest, { venue })).instruments;
  }

  /** The current book of one instrument (FAILED_PRECONDITION when it is not VALID). */
  async bookSnapshot(
    venue: string,
    symbol: string,
    depth = 0,
  ): Promise<{ snapshot: BookSnapshot; state: BookState }> {
    const answer = await this.unary(this.marketData, this.marketData.getBookSnapshot, GetBookSnapshotRequest, {
      instrument: { venue, symbol },
      depth,
    });
    return { snapshot: required(answer.snapshot, "snapshot"), state: answer.state };
  }

  /** Books: a snapshot per instrument, then deltas (or conflated snapshots every `throttleMs`). */
  streamBooks(
    instruments: readonly InstrumentRef[],
    options: { depth?: number; throttleMs?: number } = {},
  ): Subscription<BookEvent> {
    const request = {
      instruments: instruments.map(instrumentId),
      depth: options.depth ?? 0,
      throttleMs: options.throttleMs ?? 0,
    };
    return this.mapped(this.marketData, this.marketData.streamBooks, StreamBooksRequest, request, (message) => message.event);
  }

  /** Best bid and offer updates (conflated to the latest when the client is slow). */
  streamQuotes(instruments: readonly InstrumentRef[]): Subscription<Quote> {
    const request = { instruments: instruments.map(instrumentId) };
    return this.mapped(this.marketData, this.marketData.streamQuotes, StreamQuotesRequest, request, (message) => message.quote);
  }

  /** Public trades. */
  streamTrades(instruments: readonly InstrumentRef[]): Subscription<Trade> {
    const request = { instruments: instruments.map(instrumentId) };
    return this.mapped(this.marketData, this.marketData.streamTrades, StreamTradesRequest, request, (message) => message.trade);
  }

  // -- orders ----------------------------------------------------------------

  /** Submit an order through the risk checks (scope `trade`); a denial comes back DENIED. */
  async submitOrder(order: OrderInput): Promise<SubmitOrderResponse> {
    const orderType = named(ORDER_TYPES, order.orderType ?? "limit", "orderType");
    const request = {
      order: {
        clientOrderId: order.clientOrderId,
        venue: order.venue,
        symbol: order.symbol,
        side: named(SIDES, order.side, "side"),
        orderType,
        quantity: toDecimal(order.quantity, "quantity"),
        price: order.price === undefined ? undefined : toDecimal(order.price, "price"),
        timeInForce: named(TIMES_IN_FORCE, order.timeInForce ?? "gtc", "timeInForce"),
        tsSubmit: BigInt(Date.now()) * 1_000_000n,
      },
    };
    return this.unary(this.orders, this.orders.submitOrder, SubmitOrderRequest, request);
  }

  /** Ask for an order's working remainder to be cancelled (scope `trade`). */
  async cancelOrder(clientOrderId: string): Promise<OrderUpdate> {
    const answer = await this.unary(this.orders, this.orders.cancelOrder, CancelOrderRequest, { clientOrderId });
    return required(answer.order, "order");
  }

  /** Cancel every working order matching `filter`; returns the client order ids cancelled. */
  async cancelAll(filter: Partial<OrderFilter> = {}): Promise<string[]> {
    return (await this.unary(this.orders, this.orders.cancelAllOrders, CancelAllOrdersRequest, { filter })).clientOrderIds;
  }

  /** Orders, newest first, following pages until `limit` (every order when unset). */
  async listOrders(
    options: { filter?: Partial<OrderFilter>; openOnly?: boolean; limit?: number; pageSize?: number } = {},
  ): Promise<OrderUpdate[]> {
    const found: OrderUpdate[] = [];
    let pageToken = "";
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    do {
      const page = await this.unary(this.orders, this.orders.listOrders, ListOrdersRequest, {
        filter: options.filter ?? {},
        openOnly: options.openOnly ?? false,
        pageSize: options.pageSize ?? 0,
        pageToken,
      });
      found.push(...page.orders);
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && found.length < limit);
    return found.slice(0, limit);
  }

  /** Every change of matching orders, with the venue event that caused it. */
  streamOrderEvents(filter: Partial<OrderFilter> = {}): Subscription<StreamOrderEventsResponse> {
    return this.mapped(this.orders, this.orders.streamOrderEvents, StreamOrderEventsRequest, { filter }, (message) => message);
  }

  /** Fills of matching orders. */
  streamFills(filter: Partial<OrderFilter> = {}): Subscription<StreamFillsResponse> {
    return this.mapped(this.orders, this.orders.streamFills, StreamFillsRequest, { filter }, (message) => message);
  }

  // -- portfolio -------------------------------------------------------------

  /** Positions, ordered by venue, then symbol. */
  async positions(options: { venue?: string; symbol?: string; includeFlat?: boolean } = {}): Promise<Position[]> {
    return (await this.unary(this.portfolio, this.portfolio.getPositions, GetPositionsRequest, options)).positions;
  }

  /** Portfolio totals at 18 decimals. */
  async pnl(): Promise<Pnl> {
    return required((await this.unary(this.portfolio, this.portfolio.getPnl, GetPnlRequest, {})).pnl, "pnl");
  }

  /** Positions and totals every `intervalMs` (1000 by default, at least 100). */
  streamPortfolio(options: { intervalMs?: number; includeFlat?: boolean } = {}): Subscription<StreamPortfolioResponse> {
    return this.mapped(this.portfolio, this.portfolio.streamPortfolio, StreamPortfolioRequest, options, (message) => message);
  }

  // -- plug-ins --------------------------------------------------------------

  /** The plug-ins the kernel found. */
  async listPlugins(): Promise<PluginInfo[]> {
    return (await this.unary(this.plugins, this.plugins.listPlugins, ListPluginsRequest, {})).plugins;
  }

  // -- plumbing --------------------------------------------------------------

  private unary<Request, Response>(
    stub: grpc.Client,
    method: UnaryMethod<Request, Response>,
    type: RequestType<Request>,
    request: DeepPartial<Request>,
  ): Promise<Response> {
    // ts-proto's encoders expect every field: fill in the defaults first.
    const complete = type.fromPartial(request);
    return new Promise((resolve, reject) => {
      method.call(stub, complete, this.metadata(), { deadline: Date.now() + this.timeoutMs }, (error, response) => {
        if (error) reject(ApiError.from(error));
        else resolve(response);
      });
    });
  }

  private mapped<Request, Message, T>(
    stub: grpc.Client,
    method: StreamMethod<Request, Message>,
    type: RequestType<Request>,
    request: DeepPartial<Request>,
    pick: (message: Message) => T | undefined,
  ): Subscription<T> {
    const call = method.call(stub, type.fromPartial(request), this.metadata());
    return new Subscription<T>(call, pick);
  }
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new ApiError("INTERNAL", `the kernel's answer has no ${field}`, grpc.status.INTERNAL);
  return value;
}
