/**
 * Shared set-up for integration tests: a real nats-server with JetStream, real Python worker processes
 * importing real dspy, the router, and the LM double (a deterministic OpenAI-compatible test server — the
 * one thing tests fake, at the HTTP boundary).
 */
import { Router, startFleet, type Fleet, type FleetOptions, type RouterOptions } from "@dspex/router";
import type { LMConfigWire } from "@dspex/shared";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";

export interface Harness {
  fleet: Fleet;
  router: Router;
  lmDouble: LmDouble;
  /** LM config pointing dspy.LM at the double (litellm's retries off so failures surface at once). */
  lm: LMConfigWire;
  close(): Promise<void>;
}

export async function startHarness(
  options: { fleet?: FleetOptions; router?: RouterOptions } = {},
): Promise<Harness> {
  const lmDouble = await startLmDouble();
  const lm: LMConfigWire = { model: "openai/test-model", api_base: lmDouble.url, num_retries: 0 };
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet({ workers: { general: 1 }, ...options.fleet });
    const router = await Router.connect({ servers: fleet.natsUrl, lm, ...options.router });
    return {
      fleet,
      router,
      lmDouble,
      lm,
      async close() {
        await router.close();
        await fleet!.stop();
        await lmDouble.close();
      },
    };
  } catch (err) {
    await fleet?.stop();
    await lmDouble.close();
    throw err;
  }
}
