// Failed calls as one error type, named by gRPC status code.

import { status as Status, type ServiceError } from "@grpc/grpc-js";

/** The name of a gRPC status code ("UNAUTHENTICATED"). */
export type StatusName = keyof typeof Status;

const NAMES = new Map<number, StatusName>(
  (Object.entries(Status) as [StatusName, Status][])
    .filter(([, code]) => typeof code === "number")
    .map(([name, code]) => [code, name]),
);

/**
 * A call the kernel (or the transport) refused: `code` is the status name,
 * `message` the server's text without gRPC's "16 UNAUTHENTICATED: " prefix.
 */
export class ApiError extends Error {
  override name = "ApiError";

  constructor(
    readonly code: StatusName,
    message: string,
    readonly numericCode: number,
  ) {
    super(message);
  }

  /** Turn a grpc-js error into an `ApiError`; other errors pass through unchanged. */
  static from(error: unknown): unknown {
    if (error instanceof ApiError || !isServiceError(error)) return error;
    return new ApiError(NAMES.get(error.code) ?? "UNKNOWN", error.details ?? error.message, error.code);
  }
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number";
}
