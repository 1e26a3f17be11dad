/**
 * The DLQ service process: turns JetStream's max-deliveries and terminated advisories into dead letters
 * (listener.ts). Run one or more anywhere (they share one durable consumer); answers /healthz and /readyz
 * on PORT (default 8080; 0 picks a free port).
 *
 *   NATS_URL=nats://… node services/dlq/dist/server.js
 */
import { connectNats } from "@dspex/bus";
import { runService } from "@dspex/observability";
import { DlqListener } from "./listener.js";

await runService("dspex-dlq", async (log) => {
  const nc = await connectNats({ name: "dspex-dlq" });
  const listener = await DlqListener.start(nc, {
    onDeadLetter: (e) => log.info("dead letter handled", { kind: e.kind, recorded: e.recorded, pool: e.pool, dlq_seq: e.dlqSeq }),
  });
  return {
    ready: async () => ({ ok: !nc.isClosed(), detail: { nats: nc.getServer(), handled: listener.handled } }),
    stop: async () => {
      await listener.stop();
      await nc.drain();
    },
  };
});
