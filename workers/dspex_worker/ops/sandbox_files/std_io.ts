// Local stand-in for https://deno.land/std@0.186.0/io/mod.ts, which DSPy's sandbox runner (dspy/primitives/
// runner.js) imports for `readLines` only. Mapped in by import_map.json (modules.py: sandbox_interpreter), so
// the Deno + Pyodide sandbox starts without fetching deno.land (Pyodide itself comes from the npm registry).
export async function* readLines(
  reader: { read(p: Uint8Array): Promise<number | null> },
): AsyncIterableIterator<string> {
  const decoder = new TextDecoder();
  const chunk = new Uint8Array(64 * 1024);
  let buffer = "";
  while (true) {
    const n = await reader.read(chunk);
    if (n === null) break;
    buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
    let at: number;
    while ((at = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, at);
      yield line.endsWith("\r") ? line.slice(0, -1) : line;
      buffer = buffer.slice(at + 1);
    }
  }
  buffer += decoder.decode();
  if (buffer.length > 0) yield buffer;
}
