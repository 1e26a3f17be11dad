/**
 * Shared set-up for integration tests: a real nats-server with JetStream, real Python worker processes
 * importing real dspy, the client, and the LM double (a deterministic OpenAI-compatible test server — the
 * one thing tests fake, at the HTTP boundary). The LM double is the workers' default LM profile, as an
 * operator configures it (docs/security.md): requests name no endpoint, only the model.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "@dspex/bus";
import { Client, type ClientOptions } from "@dspex/client";
import { startFleet, type DefaultLm, type Fleet, type FleetOptions } from "@dspex/embedded";
import type { LMConfig } from "@dspex/protocol";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";

export interface Harness {
  fleet: Fleet;
  /** A caller (the `client` role). */
  client: Client;
  /** The operator's connection (`admin` role): what tests look at beyond a caller's permissions. */
  admin: NatsConnection;
  lmDouble: LmDouble;
  /**
   * The `lm` requests send: the model of the workers' default profile, which the fleet points at the double
   * (LM client retries off, so failures surface at once).
   */
  lm: LMConfig;
  /** The workers' default profile: the double's endpoint. */
  profile: DefaultLm;
  close(): Promise<void>;
}

export async function startHarness(
  options: { fleet?: FleetOptions; client?: ClientOptions } = {},
): Promise<Harness> {
  const lmDouble = await startLmDouble();
  const profile: DefaultLm = { model: "openai/test-model", api_base: lmDouble.url, num_retries: 0 };
  const lm: LMConfig = { model: profile.model };
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet({ workers: { general: 1 }, lm: profile, ...options.fleet });
    const client = await Client.connect({ servers: fleet.natsUrl, creds: fleet.creds.client, lm, ...options.client });
    const admin = await connectNats({ servers: fleet.natsUrl, creds: fleet.creds.admin, name: "test-admin" });
    return {
      fleet,
      client,
      admin,
      lmDouble,
      lm,
      profile,
      async close() {
        await admin.close();
        await client.close();
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
