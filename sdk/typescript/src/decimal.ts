// Exact decimals: the API's `Decimal { units, precision }` and `Amount { value }`.
//
// Prices and sizes never pass through a JS number (a double holds 53 bits;
// 61737.63 at 8 decimals is already 43 bits and sums of them soon overflow).
// Units are bigint, text is parsed digit by digit, and nothing is rounded:
// a value that does not convert exactly throws ConversionError.

import type { Amount, Decimal } from "./generated/tradekernel/v1/types";

/** A value cannot be represented exactly where it was asked to go. */
export class ConversionError extends Error {
  override name = "ConversionError";
}

const DECIMAL_TEXT = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * Parse decimal text ("61737.63", "-0.001", "5") into a `Decimal`.
 *
 * Without `precision` the result keeps the digits written ("0.0010" has
 * precision 4); with it the value is rescaled exactly, or ConversionError.
 */
export function parseDecimal(text: string, precision?: number): Decimal {
  const match = DECIMAL_TEXT.exec(text);
  if (match === null) {
    throw new ConversionError(`not a decimal number: ${JSON.stringify(text)}`);
  }
  const [, sign, whole, fraction = ""] = match;
  const magnitude = BigInt(whole + fraction);
  const parsed: Decimal = { units: sign === "-" ? -magnitude : magnitude, precision: fraction.length };
  return precision === undefined ? parsed : { units: rescale(parsed, precision), precision };
}

/** Return `value` as units at `precision`; ConversionError when digits would be lost. */
export function rescale(value: Decimal, precision: number): bigint {
  if (!Number.isInteger(precision) || precision < 0) {
    throw new ConversionError(`precision must be a non-negative integer, got ${precision}`);
  }
  if (precision >= value.precision) {
    return value.units * 10n ** BigInt(precision - value.precision);
  }
  const divisor = 10n ** BigInt(value.precision - precision);
  if (value.units % divisor !== 0n) {
    throw new ConversionError(
      `${formatDecimal(value)} does not fit ${precision} decimals without rounding`,
    );
  }
  return value.units / divisor;
}

/** Write a `Decimal` as text with exactly its precision's digits ("61737.63000000"). */
export function formatDecimal(value: Decimal): string {
  const negative = value.units < 0n;
  const digits = (negative ? -value.units : value.units).toString().padStart(value.precision + 1, "0");
  const whole = digits.slice(0, digits.length - value.precision);
  const fraction = digits.slice(digits.length - value.precision);
  return `${negative ? "-" : ""}${whole}${value.precision > 0 ? `.${fraction}` : ""}`;
}

/** Build a `Decimal` from units and precision (`decimal(6173763n, 2)` is 61737.63). */
export function decimal(units: bigint, precision: number): Decimal {
  if (typeof units !== "bigint") {
    throw new ConversionError(`units must be a bigint, got ${typeof units}`);
  }
  return { units, precision };
}

/** Compare two decimals exactly, whatever their precisions: -1, 0 or 1. */
export function compareDecimals(left: Decimal, right: Decimal): -1 | 0 | 1 {
  const precision = Math.max(left.precision, right.precision);
  const a = rescale(left, precision);
  const b = rescale(right, precision);
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Parse an `Amount` (notionals, P&L: arbitrary size) into an exact `Decimal`. */
export function amountToDecimal(amount: Amount | undefined): Decimal | undefined {
  return amount === undefined || amount.value === "" ? undefined : parseDecimal(amount.value);
}

/** Accept what a caller may write for a price or size: a `Decimal` or decimal text. */
export type DecimalInput = Decimal | string;

/** Turn a `DecimalInput` into a `Decimal`; numbers are refused, as they may already be inexact. */
export function toDecimal(value: DecimalInput, field: string): Decimal {
  if (typeof value === "string") return parseDecimal(value);
  if (value !== null && typeof value === "object" && typeof value.units === "bigint") {
    return { units: value.units, precision: value.precision };
  }
  throw new ConversionError(
    `${field}: expected decimal text ("0.001") or { units: bigint, precision }, got ${typeof value}`,
  );
}
