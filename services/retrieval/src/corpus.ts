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
    // paragraphs; one longer than a chunk (a big table) is cut at line ends
    const paragraphs = lines
      .join("\n")
      .split(/\n\s*\n/)
      .map((p) => p.trim())
      .filter(Boolean)
      .flatMap((p) => (p.length <= maxChars ? [p] : p.split("\n")));
    if (paragraphs.length === 0) continue;
    const parts: string[] = [];
    let current = "";
    for (const p of paragraphs) {
      if (current && current.length + p.length + 2 > maxChars) {
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
