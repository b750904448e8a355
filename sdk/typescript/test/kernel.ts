// Start a real kernel (`python -m kernel run`) with the gRPC API on a free port.
//
// The kernel replays the bundled Binance BTCUSDT slice at recorded speed, so
// books, quotes and trades keep flowing for about 100 seconds, and its paper
// venue answers orders with no simulated latency, so a marketable order
// fills and a cancel lands as soon as they are sent.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { BookState, KernelClient } from "../src";

export const REPOSITORY_ROOT = path.resolve(__dirname, "..", "..", "..", "..");
export const BTCUSDT_SLICE = path.join(
  REPOSITORY_ROOT,
  "kernel",
  "data",
  "binance_spot",
  "btcusdt_20240808_head12000.gz",
);

export const READ_TOKEN = "ts-read-8c41f0";
export const TRADE_TOKEN = "ts-trade-27be93";
export const ADMIN_TOKEN = "ts-admin-e6d015";

/** The Python that runs the kernel: $TRADEKERNEL_PYTHON, else the repository's .venv. */
export function kernelPython(): string {
  if (process.env.TRADEKERNEL_PYTHON) return process.env.TRADEKERNEL_PYTHON;
  const venv = path.join(REPOSITORY_ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

export interface RunningKernel {
  /** "127.0.0.1:PORT" of the API. */
  address: string;
  /** What the kernel wrote to stderr so far (its log). */
  log(): string;
  /** SIGTERM, then wait for the exit (SIGKILL after 30 s); resolves to the exit code. */
  stop(): Promise<number | null>;
}

/** Start a kernel; `extraToml` is appended to its configuration. */
export async function startKernel(extraToml = ""): Promise<RunningKernel> {
  const folder = mkdtempSync(path.join(tmpdir(), "tradekernel-ts-"));
  const config = path.join(folder, "kernel.toml");
  writeFileSync(
    config,
    [
      "[kernel]",
      "exit_when_replay_done = false",
      `state_dir = ${JSON.stringify(path.join(folder, "state"))}`,
      "",
      "[metrics]",
      "enabled = false",
      "",
      "[api]",
      "enabled = true",
      'host = "127.0.0.1"',
      "port = 0",
      "",
      "[paper]",
      "enabled = true",
      'market_venue = "binance"',
      "latency_ms = 0.0",
      "",
      "[[replay]]",
      'venue = "binance"',
      `files = [${JSON.stringify(BTCUSDT_SLICE)}]`,
      "speed = 1",
      "",
      // The kernel trades only with a strategy configured; this one warms up
      // for an hour of market time, so it places nothing during the tests.
      "[strategies.idle_momentum]",
      'strategy = "momentum"',
      'venue = "binance"',
      'symbol = "BTCUSDT"',
      "tick = 1_000_000",
      "lot = 1_000",
      "quantity = 100_000",
      "max_position = 100_000",
      "warmup_ns = 3_600_000_000_000",
      "",
      extraToml,
    ].join("\n"),
  );
  const child = spawn(kernelPython(), ["-m", "kernel", "run", "--config", config, "--no-progress"], {
    cwd: REPOSITORY_ROOT,
    env: {
      ...process.env,
      PYTHONUNBUFFERED: "1",
      TRADEKERNEL_API_TOKENS: `${READ_TOKEN}=read,${TRADE_TOKEN}=read+trade,${ADMIN_TOKEN}=read+trade+admin`,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    log += chunk;
  });
  const stop = () => stopProcess(child).finally(() => rmSync(folder, { recursive: true, force: true }));
  try {
    const port = await waitFor(
      () => /API serving on 127\.0\.0\.1:(\d+)/.exec(log)?.[1],
      60_000,
      () => (child.exitCode !== null ? `the kernel exited (${child.exitCode}):\n${log}` : undefined),
    );
    const kernel = { address: `127.0.0.1:${port}`, log: () => log, stop };
    await waitForValidBook(kernel.address);
    return kernel;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Wait until the kernel's BTCUSDT book is VALID, so orders can be priced off it. */
async function waitForValidBook(address: string): Promise<void> {
  const client = new KernelClient(address, { token: READ_TOKEN });
  try {
    let valid = false;
    await waitFor(async () => {
      const status = await client.status();
      valid = status.books.some(
        (book) => book.instrument?.symbol === "BTCUSDT" && book.state === BookState.BOOK_STATE_VALID,
      );
      return valid || undefined;
    }, 30_000);
  } finally {
    client.close();
  }
}

/** Poll `probe` until it returns a value; `failed` may end the wait early with a reason. */
export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  failed: () => string | undefined = () => undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    const reason = failed();
    if (reason !== undefined) throw new Error(reason);
    if (Date.now() > deadline) throw new Error(`nothing after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function stopProcess(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("exit", (code) => {
      clearTimeout(kill);
      resolve(code);
    });
    child.kill("SIGTERM");
  });
}
