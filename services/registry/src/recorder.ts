/**
 * The recorder: reads execution events from DSPEX_EXECUTIONS through the durable consumer `registry` and
 * writes each to the database once (executions.ts: ON CONFLICT DO NOTHING on the request id), acking only
 * after the row is committed. A redelivered event finds its row and is acked; a malformed one is set aside
 * (`term`, logged); while the database is down every event is naked with a growing delay and stays in the
 * stream (the consumer never gives up), so nothing is lost and everything is recorded once it returns.
 */
import { EventEmitter } from "node:events";
import { jetstream, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { STREAMS, registryConsumer } from "@dspex/protocol";
import type { Logger } from "@dspex/observability";
import { isConnectionError } from "./errors.js";
import { parseExecutionEvent, type ExecutionEvent } from "./events.js";
import type { Executions } from "./executions.js";

export interface RecorderStatus {
  running: boolean;
  /** False while the last write failed because the database could not be reached. */
  databaseUp: boolean;
  recorded: number;
  duplicates: number;
  malformed: number;
  failures: number;
  lastError?: string;
}

export interface RecorderEvents {
  /** An event was handled: `inserted` false for an id recorded before. */
  recorded: [event: ExecutionEvent, inserted: boolean];
  /** A write failed; the event stays in the stream. */
  failed: [error: unknown];
}

export class Recorder extends EventEmitter<RecorderEvents> {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private readonly stats: Omit<RecorderStatus, "running"> = { databaseUp: true, recorded: 0, duplicates: 0, malformed: 0, failures: 0 };

  constructor(
    private readonly nc: NatsConnection,
    private readonly executions: Executions,
    private readonly logger: Logger,
    private readonly options: { maxRetryDelayMs?: number } = {},
  ) {
    super();
  }

  get status(): RecorderStatus {
    return { running: this.messages !== undefined, ...this.stats };
  }

  async start(): Promise<void> {
    if (this.messages) return;
    const consumer = await jetstream(this.nc).consumers.get(STREAMS.executions.name, registryConsumer());
    const messages = await consumer.consume({ max_messages: 64 });
    this.messages = messages;
    this.loop = (async () => {
      for await (const m of messages) await this.handle(m);
    })().catch((err: unknown) => this.logger.error("execution recorder stopped", { error: String(err) }));
  }

  async stop(): Promise<void> {
    const messages = this.messages;
    this.messages = undefined;
    if (!messages) return;
    await messages.close().catch(() => undefined);
    await this.loop;
  }

  private async handle(m: JsMsg): Promise<void> {
    let event: ExecutionEvent;
    try {
      event = parseExecutionEvent(m.data);
    } catch (err) {
      this.stats.malformed++;
      this.logger.warn("malformed execution event set aside", { seq: m.seq, subject: m.subject, error: (err as Error).message });
      m.term("malformed execution event");
      return;
    }
    try {
      const inserted = await this.executions.record(event);
      m.ack();
      if (inserted) this.stats.recorded++;
      else this.stats.duplicates++;
      if (!this.stats.databaseUp) this.logger.info("registry database is back: recording executions again", { id: event.id });
      this.stats.databaseUp = true;
      this.emit("recorded", event, inserted);
    } catch (err) {
      this.stats.failures++;
      this.stats.lastError = (err as Error).message;
      const down = isConnectionError(err);
      if (down && this.stats.databaseUp) this.logger.warn("registry database unavailable: executions wait in JetStream", { error: this.stats.lastError });
      if (!down) this.logger.error("execution not recorded; retried later", { id: event.id, error: this.stats.lastError });
      this.stats.databaseUp = !down;
      const delay = Math.min(this.options.maxRetryDelayMs ?? 10_000, 250 * 2 ** Math.min(m.info.deliveryCount, 10));
      m.nak(delay);
      this.emit("failed", err);
    }
  }
}
