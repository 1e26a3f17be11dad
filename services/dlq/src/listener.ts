/**
 * The DLQ service's loop: reads the shared advisory consumer (`dlq` on DSPEX_ADVISORIES) and dead-letters what
 * each advisory announces (deadletters.ts). Several instances share the consumer; each advisory is handled once.
 */
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { STREAMS, deadLettersConsumer } from "@dspex/protocol";
import { requireBus } from "@dspex/bus";
import { createLogger } from "@dspex/observability";
import { deadLetter, type Advisory, type DeadLetterEvent } from "./deadletters.js";

export interface DlqListenerOptions {
  /** Reply to a still-waiting caller of a max-delivered request (default true). */
  notifyCaller?: boolean;
  /** Called for every advisory handled (tests, metrics). */
  onDeadLetter?: (event: DeadLetterEvent) => void;
  /** Keep request bodies in dead letters (default DSPEX_DLQ_KEEP_INPUTS=1; else a redacted summary). */
  keepInputs?: boolean;
}

/** Reads the shared advisory consumer and dead-letters what it announces. */
export class DlqListener {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly log = createLogger("dspex.dlq");
  readonly handled = { max_deliveries: 0, terminated: 0, failed: 0 };

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: DlqListenerOptions,
  ) {}

  static async start(nc: NatsConnection, options: DlqListenerOptions = {}): Promise<DlqListener> {
    const listener = new DlqListener(nc, options);
    await requireBus(nc, { streams: ["deadLetters", "advisories"], consumers: [{ stream: STREAMS.advisories.name, name: deadLettersConsumer() }] });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const consumer = await js.consumers.get(STREAMS.advisories.name, deadLettersConsumer());
    listener.messages = await consumer.consume({ max_messages: 16 });
    listener.loop = listener.run(jsm, js);
    return listener;
  }

  private async run(jsm: JetStreamManager, js: JetStreamClient): Promise<void> {
    for await (const m of this.messages!) {
      let advisory: Advisory;
      try {
        advisory = m.json<Advisory>();
      } catch {
        m.term();
        continue;
      }
      try {
        const event = await deadLetter(this.nc, advisory, { jsm, js, notifyCaller: this.options.notifyCaller, keepInputs: this.options.keepInputs });
        this.handled[event.kind] += 1;
        if (event.recorded) {
          this.log.warn(`request dead-lettered (${event.kind}): ${event.reason}`, {
            pool: event.pool,
            id: event.requestId,
            stream_seq: event.originalSeq,
            dlq_seq: event.dlqSeq,
          });
        }
        this.options.onDeadLetter?.(event);
        m.ack();
      } catch (err) {
        this.handled.failed += 1;
        this.log.error(`dead-lettering failed: ${String(err)}`, { stream_seq: advisory.stream_seq });
        if (!this.stopped) m.nak(1_000);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.messages?.close();
    await this.loop?.catch(() => {});
  }
}
