/**
 * Streaming a running program to its TypeScript caller (docs/dspy-surface.md, "Streaming").
 *
 * The client subscribes to a per-request subject `dspex.stream.<request id>` and sends the request with
 * `stream: {subject, fields?, status?}`; the worker runs the module through `dspy.streamify` and publishes
 * msgpack events there while it runs: `token` (a piece of an output field), `status` (module/LM/tool start and
 * end), and `end` right before the reply. `ProgramStream` is an async iterator of those events; it finishes
 * after `end` (or once the reply is in and no more events come), and `result` resolves with the typed result.
 */
import { randomUUID } from "node:crypto";
import type { Subscription } from "@nats-io/transport-node";
import { decode, streamSubject, type Operation } from "@dspex/protocol";
import type { SignatureInput } from "@dspex/native";
import type { CallOptions, CallResult } from "./call.js";
import type { Caller } from "./call.js";

export type StreamEvent =
  | { type: "token"; seq: number; field: string | null; predictor: string | null; chunk: string; last: boolean }
  | {
      type: "status";
      seq: number;
      kind: "module_start" | "module_end" | "lm_start" | "lm_end" | "tool_start" | "tool_end" | string;
      name: string | null;
      message: string;
    };

export interface StreamOptions extends CallOptions {
  /** Output fields to stream token by token (default: every output field, `reasoning` included). */
  fields?: string[];
  /** Status events for module, LM and tool start and end (default true). */
  status?: boolean;
}

interface StartOptions extends StreamOptions {
  module?: Record<string, unknown>;
  extraOutputs?: string[];
  program?: { id: string; version: number };
}

type WireEvent = { type: string; seq?: number; [key: string]: unknown };

export class ProgramStream<O> implements AsyncIterable<StreamEvent> {
  /** The typed result (outputs validated against the signature) once the reply arrived. */
  readonly result: Promise<CallResult<O> & { extra: Record<string, unknown> }>;
  private readonly queue: StreamEvent[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private settled = false;
  private failure: unknown;
  private sub: Subscription | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Every event received so far, in order. */
  readonly events: StreamEvent[] = [];

  private constructor(
    readonly id: string,
    readonly subject: string,
    run: (stream: ProgramStream<O>) => Promise<CallResult<O> & { extra: Record<string, unknown> }>,
  ) {
    this.result = run(this);
    this.result.then(
      () => this.onSettled(),
      (err: unknown) => {
        this.failure = err;
        this.onSettled();
      },
    );
  }

  static start<O>(
    client: Caller,
    op: Operation,
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    options: StartOptions,
  ): ProgramStream<O> {
    const { fields, status, module, extraOutputs, program, ...callOptions } = options;
    const id = callOptions.requestId ?? randomUUID();
    const subject = streamSubject(id);
    return new ProgramStream<O>(id, subject, async (stream) => {
      stream.sub = client.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (!err) stream.onEvent(msg.data);
        },
      });
      await client.nc.flush(); // subscribed before the worker can publish
      const result = await client.send<O>(
        {
          op,
          signature,
          inputs,
          ...(program ? { program } : {}),
          ...(extraOutputs ? { extraOutputs } : {}),
          ...(module && Object.keys(module).length > 0 ? { module } : {}),
          stream: { subject, ...(fields ? { fields } : {}), ...(status === undefined ? {} : { status }) },
        },
        // one attempt: a retry would interleave two runs' events on one subject
        { ...callOptions, requestId: id, retry: false },
      );
      return { ...result, extra: result.extra ?? {} };
    });
  }

  private onEvent(data: Uint8Array): void {
    let event: WireEvent;
    try {
      event = decode(data) as WireEvent;
    } catch {
      return;
    }
    if (event.type === "end") {
      this.ended = true;
    } else if (event.type === "token") {
      this.push({
        type: "token",
        seq: Number(event.seq ?? 0),
        field: (event.field as string | null) ?? null,
        predictor: (event.predictor as string | null) ?? null,
        chunk: String(event.chunk ?? ""),
        last: Boolean(event.last),
      });
    } else if (event.type === "status") {
      this.push({
        type: "status",
        seq: Number(event.seq ?? 0),
        kind: String(event.kind ?? "status"),
        name: (event.name as string | null) ?? null,
        message: String(event.message ?? ""),
      });
    }
    this.wake();
  }

  private push(event: StreamEvent): void {
    this.queue.push(event);
    this.events.push(event);
  }

  private onSettled(): void {
    this.settled = true;
    // The `end` event precedes the reply on the worker's connection; allow a moment for it if it is late.
    this.graceTimer = setTimeout(() => {
      this.ended = true;
      this.wake();
    }, this.ended ? 0 : 500);
    this.wake();
  }

  private wake(): void {
    if (this.done()) this.sub?.unsubscribe();
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private done(): boolean {
    return this.settled && this.ended;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    try {
      while (true) {
        const next = this.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.done()) break;
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
      if (this.failure !== undefined) throw this.failure;
    } finally {
      if (this.graceTimer) clearTimeout(this.graceTimer);
    }
  }

  /** The streamed text of one field (or of everything, for raw streams), as received so far. */
  text(field?: string | null): string {
    return this.events
      .filter((e): e is Extract<StreamEvent, { type: "token" }> => e.type === "token")
      .filter((e) => field === undefined || e.field === field)
      .map((e) => e.chunk)
      .join("");
  }
}
