/**
 * @dspex/api-client — a typed client of the gateway's REST API: `openapi-fetch` typed by the path and schema
 * types generated from the gateway's OpenAPI document (generated/openapi.ts, `npm run generate`), so a route or
 * field the gateway does not have is a compile error. `unwrap` turns an error answer into an `ApiError` carrying
 * the API's error (type, message, field, details).
 *
 *   const api = gatewayClient({ baseUrl: "http://localhost:8080", token });
 *   const programs = unwrap(await api.GET("/v1/registry/programs", { params: { query: { state: "deployed" } } }));
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./generated/openapi.js";

export type { components, paths };
export type GatewayClient = Client<paths>;

export interface GatewayClientOptions {
  /** The gateway's address (DSPEX_API_URL), e.g. http://localhost:8080. */
  baseUrl: string;
  /** An API token (DSPEX_API_TOKEN); sent as `Authorization: Bearer <token>`. */
  token: string;
  fetch?: typeof globalThis.fetch;
}

export function gatewayClient(options: GatewayClientOptions): GatewayClient {
  return createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: { authorization: `Bearer ${options.token}` },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

export interface ApiErrorBody {
  type: string;
  message: string;
  retryable: boolean;
  field?: string;
  details?: Record<string, unknown>;
  id?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: ApiErrorBody,
  ) {
    super(error.message);
    this.name = "ApiError";
  }

  get type(): string {
    return this.error.type;
  }
}

/** The data of a successful answer; an `ApiError` otherwise. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok && result.data !== undefined) return result.data;
  const body = (result.error as { error?: ApiErrorBody } | undefined)?.error;
  throw new ApiError(result.response.status, body ?? { type: "HttpError", message: `HTTP ${result.response.status}`, retryable: result.response.status >= 500 });
}
