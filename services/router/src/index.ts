/**
 * @dspex/router — the router service: the HTTP API over the client (`createHttpApi`), its housekeeping
 * (`startSweeper`), and `startRouter` wiring them (the process is server.ts).
 */
export { createHttpApi, statusFor } from "./http.js";
export { startSweeper } from "./sweeper.js";
export { startRouter, type RouterService } from "./service.js";
