/**
 * `dspex index <store> <corpus.jsonl>`: embeds a corpus on the fleet's gpu pool and upserts it into a vector store
 * (postgres://… or pglite:<dir>, `default` = DSPEX_RETRIEVAL_STORE or pglite:.dspex/retrieval), with progress.
 * Resumable and idempotent by passage id (indexer.ts: the store is the record). `dspex index status <store>
 * [collection]` counts.
 * With NATS_URL it uses that deployment's gpu workers; without, an embedded fleet with one gpu worker.
 */
import { statSync } from "node:fs";
import type { Command } from "commander";
import { Client } from "@dspex/client";
import { startFleet, type Fleet } from "@dspex/embedded";
import { defaultStoreLocation, docsCorpus, indexCorpus, openStore, readCorpus, Retriever, type IndexProgress, type Passage } from "@dspex/retrieval";

function location(store: string): string {
  return store === "default" ? defaultStoreLocation() : store;
}

function line(p: IndexProgress): string {
  return `index ${p.done}/${p.total} written ${p.written} skipped ${p.skipped} ${p.rate.toFixed(1)}/s`;
}

async function fleetClient(): Promise<{ client: Client; close(): Promise<void> }> {
  let fleet: Fleet | undefined;
  let servers = process.env.NATS_URL;
  let creds: string | undefined;
  if (!servers) {
    process.stderr.write("starting an embedded fleet (nats-server, one gpu worker)…\n");
    fleet = await startFleet({ workers: { general: 0, gpu: 1 }, lm: "env", bus: { pools: { gpu: { concurrency: 8 } } } });
    servers = fleet.natsUrl;
    creds = fleet.creds.client;
  }
  const client = await Client.connect({ servers, ...(creds ? { creds } : {}), name: "dspex-index" });
  return {
    client,
    close: async () => {
      await client.close();
      await fleet?.stop();
    },
  };
}

export function registerIndexCommands(program: Command): void {
  const index = program
    .command("index")
    .description("embed a JSONL corpus ({id, text, metadata?} per line) or a directory of Markdown on the gpu pool and upsert it into a vector store; resumable, idempotent by id")
    .argument("<store>", "postgres://… | pglite:<dir> | default")
    .argument("<corpus>", "corpus.jsonl, or a directory of .md files (chunked by section: the docs corpus)")
    .option("--collection <name>", "the collection", "docs")
    .option("--fields <names>", "metadata fields filters may use, comma-separated", "")
    .option("--batch <n>", "passages per embed call", "64")
    .action(async (store: string, corpus: string, flags: { collection: string; fields: string; batch: string }) => {
      const passages: Passage[] = statSync(corpus).isDirectory() ? docsCorpus(corpus) : readCorpus(corpus);
      const session = await fleetClient();
      try {
        const probe = await session.client.embed([passages[0]?.text ?? "probe"]);
        const fields = flags.fields ? flags.fields.split(",").map((f) => f.trim()).filter(Boolean) : [];
        const vectors = await openStore(location(store), flags.collection, { dim: probe.dim, model: probe.model, fields });
        try {
          let last = 0;
          const result = await indexCorpus(new Retriever(session.client, vectors), passages, {
            batchSize: Number(flags.batch),
            onProgress: (p) => {
              // a line per batch when piped (tests and logs read it), at most ~4 per second on a terminal
              if (!process.stderr.isTTY) process.stderr.write(`${line(p)}\n`);
              else if (performance.now() - last > 250 || p.done === p.total) {
                last = performance.now();
                process.stderr.write(`\r${line(p)}`);
              }
            },
          });
          if (process.stderr.isTTY) process.stderr.write("\n");
          process.stdout.write(`${JSON.stringify({ collection: flags.collection, count: await vectors.count(), written: result.written, skipped: result.skipped })}\n`);
        } finally {
          await vectors.close();
        }
      } finally {
        await session.close();
      }
    });
  index
    .command("status")
    .description("the passages a collection holds")
    .argument("<store>", "postgres://… | pglite:<dir> | default")
    .argument("[collection]", "the collection", "docs")
    .action(async (store: string, collection: string) => {
      const vectors = await openStore(location(store), collection);
      try {
        process.stdout.write(`${JSON.stringify({ collection: vectors.collection, count: await vectors.count() })}\n`);
      } finally {
        await vectors.close();
      }
    });
}
