/** `dspex status` and `dspex bus apply | inspect`: the deployment at NATS_URL, and its bus. */
import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { DspexError } from "@dspex/protocol";
import { applyBus, busSettings, busSpec, collectStatus, connectNats, formatApplyReport, formatDrift, formatStatus, inspectBus } from "@dspex/bus";

async function withDeployment<T>(what: string, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const servers = process.env.NATS_URL;
  if (!servers) throw new DspexError(`dspex ${what} needs NATS_URL (a deployment, or a fleet from \`dspex up\`)`, { field: "NATS_URL" });
  const nc = await connectNats({ servers, name: `dspex-${what.replace(/ /g, "-")}` });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

export function registerStatusCommands(program: Command): void {
  program
    .command("status")
    .description("the bus (replicas, leaders, limits, drift), pools, workers, lag, and routers' breakers of the deployment at NATS_URL")
    .option("--json", "print as JSON")
    .action(async (flags: { json?: boolean }) => {
      await withDeployment("status", async (nc) => {
        const status = await collectStatus(nc, busSpec(busSettings()));
        process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : `${formatStatus(status)}\n`);
      });
    });

  const bus = program.command("bus").description("the bus's streams, consumers and KV buckets (schemas/bus.json + DSPEX_BUS_* settings)");
  bus
    .command("apply")
    .description("create what is missing and update what differs (idempotent); the one writer of the bus's configuration")
    .option("--json", "print the report as JSON")
    .action(async (flags: { json?: boolean }) => {
      await withDeployment("bus apply", async (nc) => {
        const report = await applyBus(nc, busSpec(busSettings()));
        process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatApplyReport(report)}\n`);
        if (report.refused.length > 0) process.exitCode = 2;
      });
    });
  bus
    .command("inspect")
    .description("what is missing and what differs from the description (changes nothing)")
    .option("--json", "print as JSON")
    .action(async (flags: { json?: boolean }) => {
      await withDeployment("bus inspect", async (nc) => {
        const inspection = await inspectBus(nc, busSpec(busSettings()));
        if (flags.json) process.stdout.write(`${JSON.stringify(inspection, null, 2)}\n`);
        else {
          for (const m of inspection.missing) process.stdout.write(`missing ${m}\n`);
          for (const d of formatDrift(inspection.drift)) process.stdout.write(`drift   ${d}\n`);
          if (inspection.missing.length + inspection.drift.length === 0) process.stdout.write("the bus matches its description\n");
        }
        if (inspection.missing.length > 0) process.exitCode = 1;
      });
    });
}
