/**
 * @dspex/router — the router service: the HTTP API over the client (`buildHttpApi`, fastify), its housekeeping
 * (`startSweeper`), and `startRouter` wiring them (the process is server.ts).
 */
export { buildHttpApi, corsOrigins, type HttpApiOptions } from "./http/app.js";
export { contractError, statusFor } from "./http/errors.js";
export { hashToken, loadTokens, newToken, parseTokens, SCOPES, TokenTable, type ApiToken, type Scope } from "./http/tokens.js";
export { startSweeper } from "./sweeper.js";
export { startRouter, type RouterOptions, type RouterService } from "./service.js";
export { API_VERSION } from "./http/openapi.js";
export { describeApi } from "./http/describe.js";
export { REGISTRY_RESOURCES } from "./http/registry-resources.js";
export type { Operation, Resource } from "./http/resource.js";
