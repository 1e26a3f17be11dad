/**
 * The span `dspex.<op>` around the whole call (its attempts, their PRODUCER spans and the workers' CONSUMER
 * spans below it), with the client's request-duration and in-flight metrics (@dspex/observability).
 */
import { traceCall } from "@dspex/observability";
import type { Interceptor } from "../call.js";

export const tracingInterceptor: Interceptor = (input, next) => traceCall(input.op, input.pool, () => next(input));
