/**
 * The store contract on both stores, the same assertions: PostgreSQL 15 + pgvector (a real server started here,
 * pgvector built by scripts/install-test-services.sh) and the embedded PGlite + pgvector on disk. Vectors are
 * given (the stores store and search what they are handed); test/retrieval/rag.test.ts embeds with the model.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotFound, StoreUnavailable, ValidationError } from "@dspex/protocol";
import { openStore, type EmbeddedPassage, type VectorStore } from "@dspex/retrieval";
import { startPostgres, type PostgresServer } from "../registry/postgres.js";

const SPEC = { dim: 4, model: "test/unit-vectors", fields: ["source", "year"] };

function unit(...xs: number[]): Float32Array {
  const n = Math.hypot(...xs);
  return Float32Array.from(xs.map((x) => x / n));
}

const PASSAGES: EmbeddedPassage[] = [
  { id: "p1", text: "one", metadata: { source: "a", year: 2020 }, vector: unit(1, 0, 0, 0) },
  { id: "p2", text: "two", metadata: { source: "a", year: 2021 }, vector: unit(0.9, 0.1, 0, 0) },
  { id: "p3", text: "three", metadata: { source: "b", year: 2021 }, vector: unit(0, 1, 0, 0) },
  { id: "p4", text: "four", metadata: { source: "b", year: 2022 }, vector: unit(0, 0, 1, 0) },
  { id: "p5", text: "five", metadata: { source: "c", year: 2020 }, vector: unit(0.7, 0, 0, 0.7) },
];

const isError = (cls: Function, field: string) => (e: unknown) => e instanceof cls && (e as { field?: string }).field === field;

function contract(name: string, location: () => string) {
  describe(`${name} store`, () => {
    let store: VectorStore;
    before(async () => {
      store = await openStore(location(), "contract", SPEC);
    });
    after(async () => {
      await store?.close();
    });

    test("upsert is idempotent by id; count; nearest first with cosine scores", async () => {
      assert.equal(await store.upsert(PASSAGES), 5);
      assert.equal(await store.upsert([{ ...PASSAGES[0]!, text: "one, again" }]), 1);
      assert.equal(await store.count(), 5);
      const hits = await store.search(unit(1, 0.05, 0, 0), 3);
      assert.deepEqual(hits.map((h) => h.id), ["p1", "p2", "p5"]);
      assert.equal(hits[0]!.text, "one, again");
      assert.deepEqual(hits[0]!.metadata, { source: "a", year: 2020 });
      assert.ok(hits[0]!.score > hits[1]!.score && hits[1]!.score > hits[2]!.score && hits[0]!.score <= 1.00001);
      assert.deepEqual([...(await store.existing(["p1", "p9", "p3"]))].sort(), ["p1", "p3"]);
    });

    test("metadata filters: equality, any-of, several fields", async () => {
      assert.deepEqual((await store.search(unit(1, 0, 0, 0), 5, { source: "b" })).map((h) => h.id).sort(), ["p3", "p4"]);
      assert.deepEqual((await store.search(unit(1, 0, 0, 0), 5, { year: [2020, 2022] })).map((h) => h.id).sort(), ["p1", "p4", "p5"]);
      assert.deepEqual((await store.search(unit(1, 0, 0, 0), 5, { source: "a", year: 2021 })).map((h) => h.id), ["p2"]);
    });

    test("bad input is a typed error naming the field", async () => {
      await assert.rejects(store.search(unit(1, 0, 0, 0), 3, { author: "x" }), isError(ValidationError, "filter.author"));
      await assert.rejects(store.upsert([PASSAGES[0]!, { id: "bad", text: "x", vector: new Float32Array(3) }]), isError(ValidationError, "passages[1].vector"));
      await assert.rejects(store.search(new Float32Array(5), 3), isError(ValidationError, "vector"));
      await assert.rejects(store.search(unit(1, 0, 0, 0), 0), isError(ValidationError, "k"));
      await assert.rejects(openStore(location(), "contract", { ...SPEC, dim: 8 }), isError(ValidationError, "dim"));
      await assert.rejects(openStore(location(), "absent"), isError(NotFound, "collection"));
      await assert.rejects(openStore(location(), "Bad-Name", SPEC), isError(ValidationError, "collection"));
    });

    test("delete, and the collection survives reopening", async () => {
      assert.equal(await store.delete(["p4", "nope"]), 1);
      assert.equal(await store.count(), 4);
      await store.close();
      store = await openStore(location(), "contract"); // no spec: the stored one
      assert.deepEqual(store.collection, { name: "contract", ...SPEC });
      assert.equal(await store.count(), 4);
      assert.equal((await store.search(unit(0, 0, 1, 0), 1))[0]!.id !== "p4", true);
    });
  });
}

describe("vector stores", { timeout: 120_000 }, () => {
  let pg: PostgresServer;
  let dir: string;
  before(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), "dspex-pglite-"));
  });
  after(async () => {
    await pg?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  contract("postgresql", () => pg.url);
  contract("pglite", () => `pglite:${dir}`);

  test("a PostgreSQL server that is down is StoreUnavailable (retryable), and the store recovers", async () => {
    const store = await openStore(pg.url, "outage", SPEC);
    try {
      await store.upsert(PASSAGES);
      await pg.stop();
      await assert.rejects(store.search(unit(1, 0, 0, 0), 2), (e: unknown) => e instanceof StoreUnavailable && e.retryable && e.field === "store");
      await assert.rejects(store.count(), (e: unknown) => e instanceof StoreUnavailable && !String(e.message).includes("pw-"));
      await pg.start();
      assert.equal(await store.count(), 5);
    } finally {
      await store.close();
    }
    await assert.rejects(openStore(`postgres://dspex:x@127.0.0.1:1/postgres`, "x", SPEC), (e: unknown) => e instanceof StoreUnavailable && e.retryable);
  });
});

describe("indexing input", () => {
  test("a bad corpus line is a ValidationError naming it", async () => {
    const { readCorpus } = await import("@dspex/retrieval");
    const dir = mkdtempSync(join(tmpdir(), "dspex-corpus-"));
    try {
      const file = join(dir, "c.jsonl");
      const { writeFileSync } = await import("node:fs");
      writeFileSync(file, `{"id":"a","text":"one"}\n\n{"id":"a","text":"two"}\n`);
      assert.throws(() => readCorpus(file), isError(ValidationError, "corpus line 3.id"));
      writeFileSync(file, `{"id":"a","text":"one"}\n{"text":"no id"}\n`);
      assert.throws(() => readCorpus(file), isError(ValidationError, "corpus line 2.id"));
      writeFileSync(file, `{"id":"a","text":"  "}\n`);
      assert.throws(() => readCorpus(file), isError(ValidationError, "corpus line 1.text"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
