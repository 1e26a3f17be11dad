/**
 * The docs chunker (`chunkMarkdown`): passages small enough for the embedding model. A block of table rows costs
 * about a token per 1.7 characters in WordLlama's tokenizer, so a table is cut into row groups of two thirds of a
 * prose chunk, each under the table's header; prose keeps the full budget. (The examples test indexes every
 * docs/*.md page through the real model, whose 512-token limit refuses a passage that is too long.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { chunkMarkdown } from "@dspex/retrieval";

const ROOT = join(import.meta.dirname, "..", "..");

function table(rows: number): string {
  const head = "| scenario | conc | req/s | p50 ms | p95 ms |\n|---|---|---|---|---|";
  const body = Array.from({ length: rows }, (_, i) => `| DSPex direct, ${i} workers | ${i} | ${1000 + i}.5 | 0.${i}864 | 1.${i}018 |`);
  return [head, ...body].join("\n");
}

test("a long table is cut into row groups of at most two thirds of a chunk, each under the table's header", () => {
  const passages = chunkMarkdown("perf.md", `# Results\n\nThe run of record.\n\n${table(40)}\n\nAfter the table.\n`, 900);
  const parts = passages.filter((p) => p.text.includes("| DSPex direct"));
  assert.ok(parts.length >= 3, `${parts.length} parts`);
  for (const p of parts) {
    const rows = p.text.split("\n").filter((l) => l.startsWith("|"));
    assert.equal(rows[0], "| scenario | conc | req/s | p50 ms | p95 ms |", "every part starts with the header");
    assert.equal(rows[1], "|---|---|---|---|---|");
    assert.ok(rows.join("\n").length <= 600, `table part of ${rows.join("\n").length} characters`);
  }
  // every row once, in order, and the prose around the table kept
  const rows = parts.flatMap((p) => p.text.split("\n").filter((l) => l.startsWith("| DSPex")));
  assert.deepEqual(rows, table(40).split("\n").slice(2));
  assert.ok(passages.some((p) => p.text.includes("The run of record.")));
  assert.ok(passages.some((p) => p.text.includes("After the table.")));
});

test("prose keeps the full chunk size; a short table stays whole", () => {
  const prose = Array.from({ length: 12 }, (_, i) => `Paragraph ${i} says something about the bus in about sixty characters.`).join("\n\n");
  const passages = chunkMarkdown("a.md", `## Prose\n\n${prose}\n\n${table(3)}\n`, 900);
  const prosePart = passages.find((p) => p.text.includes("Paragraph 0"))!;
  assert.ok(prosePart.text.length > 600 && prosePart.text.length <= 900, `${prosePart.text.length}`);
  assert.equal(passages.filter((p) => p.text.includes("| DSPex direct")).length, 1);
});

test("no passage of the project's docs has a table part over the budget", () => {
  const dir = join(ROOT, "docs");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".md"))) {
    for (const p of chunkMarkdown(file, readFileSync(join(dir, file), "utf8"))) {
      const tableRows = p.text.split("\n").filter((l) => l.trimStart().startsWith("|"));
      const body = tableRows.filter((l) => !/^\|[\s:|-]+\|$/.test(l.trim())).length - 1; // less the header
      // one row with its header may be longer (nothing to cut at); several rows fit the budget
      if (body > 1) assert.ok(tableRows.join("\n").length <= 600, `${p.id}: ${tableRows.join("\n").length} characters of table`);
    }
  }
});
