/**
 * `dspex retrieval serve <store> [collection]`: serves one collection of a vector store on the deployment's bus
 * (NATS_URL, NATS_CREDS of a caller role), so programs on workers and processes in any language search it
 * (schemas/retrieval.schema.json, docs/retrieval.md). Runs until SIGINT/SIGTERM; several processes serving the
 * same collection share its requests (queue group). `--read-only` serves search and count only.
 */
import type { Command } from "commander";
import { Client } from "@dspex/client";
import { DspexError } from "@dspex/protocol";
import { defaultStoreLocation, openStore, Retriever, serveRetrieval } from "@dspex/retrieval";

export function registerRetrievalCommands(program: Command): void {
  const retrieval = program.command("retrieval").description("vector-store collections on the bus (docs/retrieval.md)");
  retrieval
    .command("serve")
    .description("serve a collection on dspex.retrieval.<collection>.<op> until stopped (needs NATS_URL: the deployment's bus)")
    .argument("<store>", "postgres://… | pglite:<dir> | default")
    .argument("[collection]", "the collection (indexed with `dspex index`)", "docs")
    .option("--read-only", "serve search and count only")
    .action(async (store: string, collection: string, flags: { readOnly?: boolean }) => {
      if (!process.env.NATS_URL) {
        throw new DspexError("dspex retrieval serve serves a deployment's bus: set NATS_URL (and NATS_CREDS)", { field: "NATS_URL" });
      }
      const client = await Client.connect({ name: `dspex-retrieval-${collection}` });
      const vectors = await openStore(store === "default" ? defaultStoreLocation() : store, collection);
      const retriever = new Retriever(client, vectors);
      const served = await serveRetrieval(client.nc, retriever, flags.readOnly ? { ops: ["search", "count"] } : {});
      process.stdout.write(`${JSON.stringify({ serving: collection, subjects: served.subjects, count: await retriever.count(), model: vectors.collection.model })}\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await served.stop();
      retriever.close();
      await vectors.close();
      await client.close();
    });
}
