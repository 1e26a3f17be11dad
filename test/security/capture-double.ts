/**
 * The capture double: a test double of an attacker's (or any third party's) HTTP endpoint. It records every
 * request it receives — method, path, Authorization and the other headers — and answers each POST with one
 * fixed OpenAI chat completion (`[[ ## answer ## ]]` `captured`), so that a call that does reach it succeeds
 * visibly. The security tests point an `api_base` or a profile at it and look at what arrived.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface CapturedRequest {
  method: string;
  path: string;
  authorization: string | null;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface CaptureDouble {
  /** Base URL including /v1, as an `api_base` takes it. */
  url: string;
  /** Everything received so far, oldest first. */
  requests(): CapturedRequest[];
  close(): Promise<void>;
}

const ANSWER = "[[ ## answer ## ]]\ncaptured\n\n[[ ## completed ## ]]";

function completion(model: string): string {
  return JSON.stringify({
    id: "chatcmpl-capture",
    object: "chat.completion",
    created: 0,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: ANSWER }, finish_reason: "stop" }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
}

export async function startCaptureDouble(): Promise<CaptureDouble> {
  const seen: CapturedRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method ?? "", path: req.url ?? "", authorization: req.headers.authorization ?? null, headers: req.headers, body });
      let model = "captured";
      try {
        model = String((JSON.parse(body) as { model?: unknown }).model ?? model);
      } catch {
        // not JSON: answer anyway
      }
      const text = completion(model);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests: () => [...seen],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
