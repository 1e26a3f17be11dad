/**
 * Helpers of the registry tests: an HTTP caller with a token, a GraphQL-over-WebSocket subscriber
 * (graphql-transport-ws, what the console speaks too), and a log of what the recorder wrote, to wait on.
 */
import WebSocket from "ws";
import type { Recorder } from "@dspex/registry";

export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

export function http(base: string) {
  const call = async (method: string, path: string, body?: unknown, token?: string | null, contentType = "application/json"): Promise<Answer> => {
    const res = await fetch(`${base}${path}`, {
      method,
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { "content-type": contentType }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  };
  return {
    get: (path: string, token?: string | null) => call("GET", path, undefined, token),
    post: (path: string, body: unknown, token?: string | null, contentType?: string) => call("POST", path, body, token, contentType),
    graphql: async (query: string, variables: Record<string, unknown>, token: string) => (await call("POST", "/graphql", { query, variables }, token)).body as { data: any; errors?: any[] },
  };
}

/** A GraphQL subscription over WebSocket: its messages as they come, and a way to wait for one. */
export class Subscription {
  readonly events: any[] = [];
  readonly errors: any[] = [];
  private waiters: Array<() => void> = [];
  private constructor(private readonly ws: WebSocket) {}

  static async open(url: string, token: string, query: string, variables: Record<string, unknown>): Promise<Subscription> {
    const ws = new WebSocket(url, "graphql-transport-ws");
    const sub = new Subscription(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no connection_ack in 10 s")), 10_000);
      ws.on("error", reject);
      ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })));
      ws.on("message", (data) => {
        const m = JSON.parse(String(data));
        if (m.type === "connection_ack") {
          clearTimeout(timer);
          ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
          resolve();
        } else if (m.type === "next") sub.push(m.payload);
        else if (m.type === "error" || m.type === "connection_error") {
          sub.errors.push(m.payload);
          sub.wake();
          clearTimeout(timer);
          reject(new Error(`subscription refused: ${JSON.stringify(m.payload)}`));
        }
      });
      ws.on("close", () => {
        clearTimeout(timer);
        sub.wake();
        reject(new Error("closed before connection_ack"));
      });
    });
    return sub;
  }

  private push(payload: any): void {
    this.events.push(payload);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves with the first event matching `pred` (rejects after `timeoutMs`). */
  async waitFor(pred: (e: any) => boolean, timeoutMs = 60_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching subscription event in ${timeoutMs} ms; got ${JSON.stringify(this.events).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.ws.close();
  }
}

/** What a recorder wrote (or found written), by execution id. */
export class RecordedLog {
  readonly seen = new Map<string, boolean[]>();
  private waiters: Array<() => void> = [];

  constructor(recorder: Recorder) {
    recorder.on("recorded", (event, inserted) => {
      this.seen.set(event.id, [...(this.seen.get(event.id) ?? []), inserted]);
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  /** Resolves once the recorder handled `id` `times` times. */
  async wait(id: string, times = 1, timeoutMs = 30_000): Promise<boolean[]> {
    const deadline = Date.now() + timeoutMs;
    while ((this.seen.get(id)?.length ?? 0) < times) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`execution ${id} not recorded ${times}× in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.seen.get(id)!;
  }
}
