// Exact decimals: text and bigint units in and out, nothing ever rounded.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  ConversionError,
  amountToDecimal,
  compareDecimals,
  formatDecimal,
  parseDecimal,
  rescale,
  toDecimal,
} from "../src";

describe("decimals", () => {
  it("parses text keeping the digits written, or at a precision asked for", () => {
    assert.deepEqual(parseDecimal("61737.63"), { units: 6_173_763n, precision: 2 });
    assert.deepEqual(parseDecimal("61737.63", 8), { units: 6_173_763_000_000n, precision: 8 });
    assert.deepEqual(parseDecimal("-0.0010"), { units: -10n, precision: 4 });
    assert.deepEqual(parseDecimal("5"), { units: 5n, precision: 0 });
  });

  it("keeps values beyond a double's 53 bits exact", () => {
    const text = "92233720368.54775807"; // the largest sint64 at 8 decimals
    assert.equal(formatDecimal(parseDecimal(text)), text);
    assert.equal(parseDecimal(text).units, 2n ** 63n - 1n);
  });

  it("refuses text that is not a plain decimal", () => {
    for (const text of ["", "1e5", "+1", "1,000.0", " 1", "0x10", "1.", ".5", "NaN"]) {
      assert.throws(() => parseDecimal(text), ConversionError, text);
    }
  });

  it("rescales up freely and down only without losing digits", () => {
    assert.equal(rescale({ units: 1n, precision: 3 }, 8), 100_000n);
    assert.equal(rescale({ units: 100_000n, precision: 8 }, 3), 1n);
    assert.throws(() => rescale({ units: 100_001n, precision: 8 }, 3), /without rounding/);
    assert.throws(() => parseDecimal("0.123456789", 8), ConversionError);
  });

  it("writes every digit of the precision, sign first", () => {
    assert.equal(formatDecimal({ units: 6_173_763_000_000n, precision: 8 }), "61737.63000000");
    assert.equal(formatDecimal({ units: -5n, precision: 3 }), "-0.005");
    assert.equal(formatDecimal({ units: 42n, precision: 0 }), "42");
  });

  it("compares across precisions and reads amounts of any size", () => {
    assert.equal(compareDecimals(parseDecimal("0.1"), parseDecimal("0.10000000")), 0);
    assert.equal(compareDecimals(parseDecimal("0.1"), parseDecimal("0.09999999")), 1);
    const notional = amountToDecimal({ value: "123456789012345678901234.000000000000000001" });
    assert.equal(notional?.precision, 18);
    assert.equal(formatDecimal(notional!), "123456789012345678901234.000000000000000001");
    assert.equal(amountToDecimal({ value: "" }), undefined);
  });

  it("refuses a JS number where a price or size is expected", () => {
    assert.throws(() => toDecimal(0.1 as unknown as string, "price"), /price: expected decimal text/);
    assert.deepEqual(toDecimal("0.1", "price"), { units: 1n, precision: 1 });
  });
});
