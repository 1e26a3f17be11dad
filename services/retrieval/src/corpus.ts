/**
 * The corpus the project ships for RAG: its own documentation (docs/*.md), chunked by section (## and ###
 * headings; a long section split at paragraph boundaries into parts of about 900 characters, within the model's
 * 512 tokens), each chunk a passage with a stable id (`<file>#<heading slug>[-<part>]`) and metadata
 * `{source, heading}`. The question set written for it is data/docs-questions.json (gold: the answering section).
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Passage } from "./store.js";

export const QUESTIONS_FILE = join(import.meta.dirname, "../data/docs-questions.json");

export interface Question {
  question: string;
  /** The section that answers it. */
  gold: { source: string; heading: string };
}

export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "top";
}

/**
 * A table's rows packed into parts of at most `max` characters, each led by the table's header and separator rows.
 * Tables get two thirds of a prose chunk: numbers and pipes take a token for every ~1.7 characters in the embedding
 * model's tokenizer (WordLlama's 512-token limit: a 900-character block of table rows measured 536 tokens), prose
 * one for every ~4.
 */
function tableParts(table: string, max: number): string[] {
  const lines = table.split("\n");
  const head = lines.length > 2 && /^\|[\s:|-]+\|$/.test(lines[1]!.trim()) ? lines.slice(0, 2) : [];
  const rows = lines.slice(head.length);
  const parts: string[] = [];
  let current: string[] = [];
  for (const row of rows) {
    const size = [...head, ...current, row].join("\n").length;
    if (current.length > 0 && size > max) {
      parts.push([...head, ...current].join("\n"));
      current = [];
    }
    current.push(row);
  }
  if (current.length > 0) parts.push([...head, ...current].join("\n"));
  return parts;
}

const isTableLine = (line: string) => line.trimStart().startsWith("|");
const isTable = (paragraph: string) => paragraph.split("\n").every(isTableLine);
const hasTable = (text: string) => text.split("\n").some(isTableLine);

export function chunkMarkdown(source: string, text: string, maxChars = 900): Passage[] {
  const sections: Array<{ heading: string; lines: string[] }> = [{ heading: "", lines: [] }];
  for (const line of text.split("\n")) {
    const m = /^#{1,3} (.+)$/.exec(line);
    if (m) sections.push({ heading: m[1]!.trim(), lines: [line] });
    else sections.at(-1)!.lines.push(line);
  }
  const passages: Passage[] = [];
  const used = new Map<string, number>();
  for (const { heading, lines } of sections) {
    // paragraphs; a table longer than two thirds of a chunk is cut into row groups under its header, other
    // paragraphs longer than a chunk at line ends
    const tableMax = Math.floor((maxChars * 2) / 3);
    const paragraphs = lines
      .join("\n")
      .split(/\n\s*\n/)
      .map((p) => p.trim())
      .filter(Boolean)
      .flatMap((p) => (isTable(p) ? (p.length <= tableMax ? [p] : tableParts(p, tableMax)) : p.length <= maxChars ? [p] : p.split("\n")));
    if (paragraphs.length === 0) continue;
    const parts: string[] = [];
    let current = "";
    for (const p of paragraphs) {
      const budget = hasTable(p) || hasTable(current) ? tableMax : maxChars;
      if (current && current.length + p.length + 2 > budget) {
        parts.push(current);
        current = "";
      }
      current = current ? `${current}\n\n${p}` : p;
    }
    if (current) parts.push(current);
    const base = `${source}#${slug(heading)}`;
    const seen = used.get(base) ?? 0;
    used.set(base, seen + parts.length);
    parts.forEach((part, i) => {
      // the heading leads every part, so a part of a long section still says what it is about
      const body = i > 0 && heading ? `${heading}\n\n${part}` : part;
      passages.push({ id: seen + i === 0 ? base : `${base}-${seen + i}`, text: body, metadata: { source, heading: heading || "(top)" } });
    });
  }
  return passages;
}

/** Every docs/*.md of a directory, chunked. */
export function docsCorpus(dir: string): Passage[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".md"))
    .sort()
    .flatMap((f) => chunkMarkdown(basename(f), readFileSync(join(dir, f), "utf8")));
}

export function readQuestions(path = QUESTIONS_FILE): Question[] {
  return JSON.parse(readFileSync(path, "utf8")) as Question[];
}
