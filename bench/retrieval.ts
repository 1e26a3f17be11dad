/**
 * Retrieval numbers (`npm run bench:retrieval`), one run, one machine:
 *
 *   embeddings/s   the gpu pool (client.embed over the bus, one gpu worker, requests of --batch texts at
 *                  --concurrency) vs the same model class in one Python process (bench/py/embed_inprocess.py,
 *                  the same texts and batch size): the ratio is what the bus costs per vector
 *   retrieval p50  per store (PostgreSQL + pgvector on a server started here, PGlite + pgvector on disk) at
 *                  --passages passages: the store's search alone (HNSW, k=10) and retrieve end to end (embed
 *                  the query on the fleet + search)
 *   recall@k       the shipped docs question set in both stores
 *
 * Options: --passages=10000 --batch=64 --concurrency=8 --queries=200 --out=path. Writes bench/results/retrieval.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@dspex/client";
import { startFleet } from "@dspex/embedded";
import { docsCorpus, indexCorpus, openStore, readQuestions, recallAtK, Retriever, type Hit, type Passage } from "@dspex/retrieval";
import { startPostgres } from "../test/registry/postgres.js";
import { machineFacts } from "./lib/machine.js";
import { PROJECT_ROOT, RESULTS_DIR } from "./lib/paths.js";
import { runPython } from "./lib/proc.js";

const argv = process.argv.slice(2);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const PASSAGES = Number(opt("passages") ?? 10_000);
const BATCH = Number(opt("batch") ?? 64);
const CONCURRENCY = Number(opt("concurrency") ?? 8);
const QUERIES = Number(opt("queries") ?? 200);
const OUT = opt("out") ?? join(RESULTS_DIR, "retrieval.json");
const log = (text: string) => process.stderr.write(`[bench:retrieval] ${text}\n`);

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Synthetic passages: the docs' sentences recombined, so texts are varied and realistic in length. */
function passages(n: number): Passage[] {
  const sentences = docsCorpus(join(PROJECT_ROOT, "docs")).flatMap((p) => p.text.split(/(?<=[.!?])\s+/)).filter((s) => s.length > 30 && s.length < 300);
  return Array.from({ length: n }, (_, i) => ({
    id: `b-${i}`,
    text: [0, 1, 2].map((j) => sentences[(i * 7 + j * 131) % sentences.length]!).join(" "),
    metadata: { source: `s${i % 10}` },
  }));
}

async function main(): Promise<void> {
  const corpus = passages(PASSAGES);
  const texts = corpus.map((p) => p.text);
  const dir = mkdtempSync(join(tmpdir(), "dspex-bench-retrieval-"));
  writeFileSync(join(dir, "texts.json"), JSON.stringify(texts));
  const inprocess = await runPython<{ vectors_per_s: number; load_s: number }>("embed_inprocess.py", ["--texts", join(dir, "texts.json"), "--batch", String(BATCH)]);
  log(`in-process: ${inprocess.vectors_per_s.toFixed(0)} vectors/s`);

  const [fleet, pg] = await Promise.all([startFleet({ workers: { general: 0, gpu: 1 }, lm: "env", bus: { pools: { gpu: { concurrency: 16 } } } }), startPostgres()]);
  const client = await Client.connect({ servers: fleet.natsUrl, creds: fleet.creds.client });
  try {
    await client.embed(texts.slice(0, BATCH)); // warm-up: the worker loads the model
    const batches = Array.from({ length: Math.ceil(texts.length / BATCH) }, (_, i) => texts.slice(i * BATCH, (i + 1) * BATCH));
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < batches.length) await client.embed(batches[next++]!);
      }),
    );
    const busRate = texts.length / ((performance.now() - t0) / 1000);
    log(`gpu pool: ${busRate.toFixed(0)} vectors/s (ratio to in-process ${(busRate / inprocess.vectors_per_s).toFixed(2)})`);

    const probe = await client.embed(["probe"]);
    const stores: Record<string, unknown> = {};
    const questions = readQuestions();
    const docs = docsCorpus(join(PROJECT_ROOT, "docs"));
    for (const [name, location] of [["postgresql", pg.url], ["pglite", `pglite:${join(dir, "pglite")}`]] as const) {
      const store = await openStore(location, "bench", { dim: probe.dim, model: probe.model, fields: ["source"] });
      const retriever = new Retriever(client, store);
      const t1 = performance.now();
      await indexCorpus(retriever, corpus, { batchSize: 256 });
      const indexS = (performance.now() - t1) / 1000;
      const queries = await client.embed(texts.slice(0, QUERIES).map((t) => t.split(" ").slice(0, 8).join(" ")));
      const search: number[] = [];
      for (const v of queries.vectors) {
        const s = performance.now();
        await store.search(v, 10);
        search.push(performance.now() - s);
      }
      const filtered: number[] = [];
      for (const v of queries.vectors.slice(0, 50)) {
        const s = performance.now();
        await store.search(v, 10, { source: "s3" });
        filtered.push(performance.now() - s);
      }
      const endToEnd: number[] = [];
      for (const t of texts.slice(0, 50)) {
        const s = performance.now();
        await retriever.retrieve(t.split(" ").slice(0, 8).join(" "), 10);
        endToEnd.push(performance.now() - s);
      }
      const docsStore = await openStore(location, "benchdocs", { dim: probe.dim, model: probe.model, fields: ["source"] });
      const docsRetriever = new Retriever(client, docsStore);
      await indexCorpus(docsRetriever, docs);
      const results: Array<{ hits: Hit[]; isGold: (h: Hit) => boolean }> = [];
      for (const q of questions) {
        results.push({ hits: await docsRetriever.retrieve(q.question, 10), isGold: (h) => h.metadata?.source === q.gold.source && h.metadata?.heading === q.gold.heading });
      }
      stores[name] = {
        passages: await store.count(),
        index_s: Number(indexS.toFixed(1)),
        index_passages_per_s: Math.round(PASSAGES / indexS),
        search_p50_ms: Number(percentile(search, 50).toFixed(2)),
        search_p95_ms: Number(percentile(search, 95).toFixed(2)),
        filtered_search_p50_ms: Number(percentile(filtered, 50).toFixed(2)),
        retrieve_p50_ms: Number(percentile(endToEnd, 50).toFixed(2)),
        docs_recall_at: { 1: recallAtK(results, 1), 5: recallAtK(results, 5), 10: recallAtK(results, 10) },
      };
      log(`${name}: ${JSON.stringify(stores[name])}`);
      await docsStore.close();
      await store.close();
    }
    const result = {
      at: new Date().toISOString(),
      machine: machineFacts(),
      options: { passages: PASSAGES, batch: BATCH, concurrency: CONCURRENCY, queries: QUERIES },
      model: probe.model,
      dim: probe.dim,
      embeddings: { inprocess_vectors_per_s: Math.round(inprocess.vectors_per_s), gpu_pool_vectors_per_s: Math.round(busRate), ratio: Number((busRate / inprocess.vectors_per_s).toFixed(3)), model_load_s: Number(inprocess.load_s.toFixed(2)) },
      stores,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result.embeddings)}\n${JSON.stringify(stores, null, 2)}\n`);
  } finally {
    await client.close();
    await fleet.stop();
    await pg.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
