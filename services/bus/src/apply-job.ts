/**
 * The bus's one provisioner as a process (the Kubernetes Job `dspex-bus-apply`, deploy/k8s/base/bus-apply.yaml):
 * applies the description (schemas/bus.json + DSPEX_BUS_* settings) with the admin identity in NATS_CREDS, as
 * `dspex bus apply` does, prints the report and exits — 0 when the bus matches, 2 when a change was refused
 * (e.g. a stream's storage cannot change in place), 1 when it could not connect or apply. It ships in the
 * service images (a dependency of every service), so the Job needs no image of its own.
 *
 *   NATS_URL=tls://nats:4222 NATS_CREDS=/etc/dspex/nats/nats.creds NATS_CA=… node services/bus/dist/apply-job.js
 */
import { applyBus, formatApplyReport } from "./apply.js";
import { connectNats } from "./connect.js";
import { busSettings } from "./settings.js";
import { busSpec } from "./spec.js";

const servers = process.env.NATS_URL;
if (!servers) {
  process.stderr.write("dspex-bus-apply: NATS_URL is not set\n");
  process.exit(1);
}
try {
  const nc = await connectNats({ servers, name: "dspex-bus-apply" });
  try {
    const report = await applyBus(nc, busSpec(busSettings()));
    process.stdout.write(`${formatApplyReport(report)}\n`);
    process.exitCode = report.refused.length > 0 ? 2 : 0;
  } finally {
    await nc.close();
  }
} catch (err) {
  process.stderr.write(`dspex-bus-apply: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
