import type { Readable } from "node:stream";
import { createInterface } from "node:readline";

/** Calls `onLine` for each line of a child's output stream. */
export function eachLine(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on("line", onLine);
}
