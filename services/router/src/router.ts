/**
 * The router: typed DSPy calls from TypeScript. Validates inputs against the signature before anything is
 * published, publishes a msgpack request on the pool's JetStream subject with its reply inbox in a header,
 * and resolves with the validated outputs when the worker's reply arrives.
 */
import { randomUUID } from "node:crypto";
import { connect, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import {
  ENVELOPE_VERSION,
  HEADERS,
  NoWorkersError,
  PayloadTooLargeError,
  SessionAffinityError,
  partitionOf,
  partitionSubject,
  TimeoutError,
  TransportError,
  decode,
  encode,
  errorFromWire,
  poolSettings,
  requestSubject,
  resolveSignature,
  validateInputs,
  validateOutputs,
  type LMConfigWire,
  type Operation,
  type Pool,
  type PoolSettings,
  type ReplyEnvelope,
  type ReplyOk,
  type RequestEnvelope,
  type SignatureInput,
  type SignatureWire,
  type Timings,
  type Usage,
  REQUEST_STREAM,
  observeConsumerLag,
  traceCall,
  tracedPublish,
  type Stoppable,
} from "@dspex/shared";
import { WorkerDiscovery } from "./discovery.js";
import { breakerStates } from "./breakers.js";
import { ROUTER_STATUS_SUBJECT } from "./status.js";
import { provisionBus } from "./provision.js";
import { ProgramStore, type CreateProgramOptions, type ProgramVersion } from "./programs.js";
import { SessionTable } from "./sessions.js";
import { startDlqListener, type DlqListener, type DlqListenerOptions } from "./dlq.js";
import { REPLY_ACK_HEADER, Resilience, type ResilienceOptions, type ResilientCallOptions } from "./resilience.js";
import { publishWithRetry } from "./retry.js";

export interface RouterOptions {
  /** NATS server URL(s); defaults to $NATS_URL, then nats://127.0.0.1:4222. */
  servers?: string | string[];
  /** Use this connection instead of opening one (the router will not close it). */
  connection?: NatsConnection;
  /** Default LM for calls that name none; falls back to the workers' own default (DSPEX_LM). */
  lm?: LMConfigWire;
  /** Per-pool settings; defaults from poolSettings() (documented defaults + env overrides). */
  pools?: Partial<Record<Pool, Partial<PoolSettings>>>;
  /** Create the request stream and pool consumers if missing (default true). */
  provision?: boolean;
  /** Fail fast with NoWorkersError when a pool has no live worker (default true). */
  checkWorkers?: boolean;
  /** How often programs of expired sessions are deleted (default 60 s; 0 disables). */
  sweepIntervalMs?: number;
  /** Circuit breakers, retries, fallback (docs/reliability.md). */
  resilience?: ResilienceOptions;
  /** Run the dead-letter listener (default true; see dlq.ts). */
  dlq?: boolean | DlqListenerOptions;
}

export interface CallOptions extends ResilientCallOptions {
  lm?: LMConfigWire;
  /** Milliseconds until the call fails with TimeoutError; the deadline travels with the request. */
  timeoutMs?: number;
  pool?: Pool;
  session?: string;
  /**
   * How a session sticks to its worker. `hint` (default): the session's partition is served by one worker
   * while it lives and moves to another when it dies (program state is rebuilt from KV). `strict`: the
   * session must stay on the worker that first served it; if that worker is gone the call fails fast with
   * SessionAffinityError.
   */
  affinity?: "hint" | "strict";
  /** Few-shot demos: example maps with input and output fields. */
  demos?: Array<Record<string, unknown>>;
  /** Instructions, when the signature is given as a string. */
  instructions?: string;
  /** Reuse a request id (idempotent retry of the same request). */
  requestId?: string;
  signal?: AbortSignal;
}

/** What the modules built on the router (surface.ts, optimize.ts, stream.ts) add to a call. */
export interface CallExtensions {
  /** A stored program to run (execute). */
  program?: { id: string; version: number };
  /** Extra envelope fields; a `module` map is merged into the call's module options. */
  envelope?: Partial<RequestEnvelope>;
  /** Output names allowed besides the signature's (e.g. `rationale`). */
  extraOutputs?: string[];
  /** The inputs are already validated (or the op takes none: `parallel`, `compile`). */
  rawInputs?: boolean;
  /** Hand back the reply's outputs as they are (ops whose outputs are not the signature's). */
  rawOutputs?: boolean;
  /** Sees the success reply (its `extra` field) before the outputs are validated. */
  onReply?: (reply: ReplyOk) => void;
}

export interface CallResult<O> {
  id: string;
  outputs: O;
  lm: string;
  usage: Usage;
  timings: Timings & { total_ms: number };
  worker: string;
}

interface Pending {
  resolve: (reply: ReplyEnvelope) => void;
  reject: (err: unknown) => void;
}

export class Router {
  private readonly pending = new Map<string, Pending>();
  private readonly pools: Record<Pool, PoolSettings>;
  private readonly inbox: string;
  private sub: Subscription | undefined;
  private statusSub: Subscription | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private consumerLag: Stoppable | undefined;
  readonly sessions: SessionTable;
  readonly programs: ProgramStore;
  /** Breakers, retries, dropped-reply counters (resilience.ts). */
  readonly resilience: Resilience;
  dlq: DlqListener | undefined;

  private constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly ownsConnection: boolean,
    readonly discovery: WorkerDiscovery,
    private readonly options: RouterOptions,
  ) {
    this.pools = poolSettings(options.pools);
    this.resilience = new Resilience(options.resilience, this.pools, nc);
    this.inbox = `_INBOX.${randomUUID().replaceAll("-", "")}`;
    this.sessions = new SessionTable(nc);
    this.programs = new ProgramStore(nc);
    const sweepMs = options.sweepIntervalMs ?? 60_000;
    if (sweepMs > 0) {
      this.sweeper = setInterval(() => void this.programs.sweepExpired(this.sessions).catch(() => {}), sweepMs);
      this.sweeper.unref();
    }
  }

  static async connect(options: RouterOptions = {}): Promise<Router> {
    let nc = options.connection;
    const owns = nc === undefined;
    if (!nc) {
      const servers = options.servers ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
      try {
        // noAsyncTraces: no Error (stack capture) built up front for every request/JetStream publish; our
        // errors carry their own context (TransportError with the cause), and it was ~15% of the router's CPU.
        nc = await connect({ servers, name: "dspex-router", maxReconnectAttempts: -1, noAsyncTraces: true });
      } catch (err) {
        throw new TransportError(`cannot connect to NATS at ${String(servers)}: ${String(err)}`, { cause: err });
      }
    }
    const router = new Router(nc, jetstream(nc), owns, new WorkerDiscovery(nc), options);
    if (options.provision !== false) {
      await provisionBus(nc, { pools: router.pools });
    }
    router.listen();
    // `dspex status` runs in another process: every router answers with its breaker states.
    router.statusSub = nc.subscribe(ROUTER_STATUS_SUBJECT, {
      callback: (_err, msg) => {
        msg.respond(JSON.stringify({ router: router.inbox, breakers: breakerStates() }));
      },
    });
    if (options.dlq !== false) router.dlq = await startDlqListener(nc, typeof options.dlq === "object" ? options.dlq : {});
    router.consumerLag = observeConsumerLag(async () => (await jetstreamManager(nc, { checkAPI: false })).consumers.list(REQUEST_STREAM).next());
    if (options.checkWorkers !== false) await router.discovery.start();
    return router;
  }

  private listen(): void {
    this.sub = this.nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err) return;
        this.onReply(msg);
      },
    });
  }

  private onReply(msg: Msg): void {
    if (msg.reply) msg.respond(); // confirms receipt: the worker stops re-sending (Dspex-Reply-Ack)
    let reply: ReplyEnvelope;
    try {
      reply = decode(msg.data) as ReplyEnvelope;
    } catch {
      return; // not ours to interpret; the caller's timeout reports the missing answer
    }
    const id = msg.subject.slice(this.inbox.length + 1);
    const pending = this.pending.get(id);
    if (!pending) return this.resilience.replies.drop(id); // late reply after a timeout, or a duplicate: never surfaces twice
    this.pending.delete(id);
    this.resilience.replies.settled(id, "answered"); // a second reply for this id is then counted as a duplicate
    pending.resolve(reply);
  }

  /** `dspy.Predict` on the general pool. */
  predict<O extends Record<string, unknown> = Record<string, unknown>>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<CallResult<O>> {
    return this.call<O>("predict", signature, inputs, options);
  }

  /** `dspy.ChainOfThought`: outputs gain a `reasoning` field. */
  chainOfThought<O extends Record<string, unknown> = Record<string, unknown>>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<CallResult<O & { reasoning: string }>> {
    return this.call<O & { reasoning: string }>("chain_of_thought", signature, inputs, options);
  }

  /** Stores a program (signature, module, state) in KV and returns its id and version. */
  createProgram(options: CreateProgramOptions): Promise<ProgramVersion> {
    return this.programs.create(options);
  }

  /** Runs a stored program, the latest version unless `version` names one. */
  async execute<O extends Record<string, unknown> = Record<string, unknown>>(
    programId: string,
    inputs: Record<string, unknown>,
    options: CallOptions & { version?: number } = {},
  ): Promise<CallResult<O> & { version: number }> {
    const { definition, version } = await this.programs.get(programId, options.version);
    const session = options.session ?? definition.session;
    const result = await this.call<O>(definition.module, definition.signature, inputs, {
      ...options,
      session,
      program: { id: definition.id, version },
    });
    return { ...result, version };
  }

  async call<O>(
    op: Operation,
    signatureInput: SignatureInput,
    rawInputs: Record<string, unknown>,
    options: CallOptions & CallExtensions = {},
  ): Promise<CallResult<O>> {
    // Pool by operation: optimizer jobs run on the optimizer pool, every module op on general.
    if (op === "compile" && options.pool === undefined) options = { ...options, pool: "optimizer" };
    return traceCall(op, options.pool ?? "general", () =>
      this.resilience.call<O>(op, signatureInput, rawInputs, options, this.options.lm, (attempt) =>
        this.callUntraced<O>(op, signatureInput, rawInputs, { ...options, ...attempt }),
      ),
    );
  }

  private async callUntraced<O>(
    op: Operation,
    signatureInput: SignatureInput,
    rawInputs: Record<string, unknown>,
    options: CallOptions & CallExtensions,
  ): Promise<CallResult<O>> {
    const started = performance.now();
    const signature: SignatureWire = resolveSignature(signatureInput, options.instructions);
    const inputs = options.rawInputs ? rawInputs : validateInputs(signature, rawInputs);
    const pool = options.pool ?? "general";
    const settings = this.pools[pool];
    const timeoutMs = options.timeoutMs ?? settings.defaultTimeoutMs;
    const id = options.requestId ?? randomUUID();

    if (this.options.checkWorkers !== false) {
      const live = await this.discovery.ensureLive(pool);
      if (live.length === 0) {
        throw new NoWorkersError(`no live workers in pool '${pool}'`, { details: { pool } });
      }
    }

    const envelope: RequestEnvelope = { v: ENVELOPE_VERSION, id, op, signature, inputs, timeout_ms: timeoutMs };
    const lm = options.lm ?? this.options.lm;
    if (lm) envelope.lm = lm;
    if (options.demos) envelope.module = { demos: options.demos };
    if (options.program) envelope.program = options.program;
    if (options.envelope) {
      const { module, ...rest } = options.envelope;
      Object.assign(envelope, rest);
      if (module) envelope.module = { ...envelope.module, ...module };
    }
    let subject = requestSubject(pool);
    if (options.session) {
      envelope.session = options.session;
      // A pool without partitions (optimizer and gpu by default) has no affinity: any worker takes it.
      if (settings.partitions > 0) subject = partitionSubject(pool, partitionOf(options.session, settings.partitions));
    }
    const body = encode(envelope);
    if (body.byteLength > settings.maxPayloadBytes) {
      throw new PayloadTooLargeError(
        `request is ${body.byteLength} bytes; pool '${pool}' accepts at most ${settings.maxPayloadBytes}`,
        { field: "inputs", details: { size: body.byteLength, limit: settings.maxPayloadBytes } },
      );
    }
    const deadline = Date.now() + timeoutMs;
    const h = natsHeaders();
    h.set(HEADERS.replyTo, `${this.inbox}.${id}`);
    h.set(HEADERS.version, String(ENVELOPE_VERSION));
    h.set(HEADERS.deadline, String(deadline));
    h.set(REPLY_ACK_HEADER, "1");
    if (options.session && options.affinity === "strict") {
      const owner = await this.sessions.owner(options.session);
      if (owner !== undefined) {
        if (!this.discovery.live(pool).some((w) => w.worker === owner)) {
          throw new SessionAffinityError(
            `session '${options.session}' is bound to worker ${owner}, which is no longer alive (affinity: strict)`,
            { field: "session", details: { session: options.session, worker: owner, pool } },
          );
        }
        h.set(HEADERS.sessionWorker, owner);
      }
    }

    const reply = await new Promise<ReplyEnvelope>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`no reply within ${timeoutMs} ms (request ${id}, pool '${pool}')`, {
          details: { id, pool, timeoutMs },
        }));
      }, timeoutMs);
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => {
        this.pending.delete(id);
        finish(() => reject(options.signal?.reason ?? new Error("aborted")));
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        resolve: (r) => finish(() => resolve(r)),
        reject: (e) => finish(() => reject(e)),
      });
      tracedPublish({ headers: h, subject, pool, messageId: id, bodySize: body.byteLength }, () =>
        publishWithRetry(this.js, subject, body, {
          msgID: id,
          headers: h,
          deadline,
          stopped: () => !this.pending.has(id),
          onRetry: () => void this.resilience.counts.republished++,
        }),
      ).catch((err: unknown) => {
        const p = this.pending.get(id);
        this.pending.delete(id);
        p?.reject(new TransportError(`publish to JetStream failed: ${String(err)}`, { cause: err }));
      });
    });

    if (!reply.ok) {
      throw errorFromWire(reply.error);
    }
    this.discovery.sawWorker(reply.worker, pool);
    if (options.session) this.sessions.touch(options.session, reply.worker, pool);
    options.onReply?.(reply);
    const outputs = options.rawOutputs
      ? reply.outputs
      : validateOutputs(signature, reply.outputs, {
          extra: [...(op === "chain_of_thought" ? ["reasoning"] : []), ...(options.extraOutputs ?? [])],
        });
    return {
      id,
      outputs: outputs as O,
      lm: reply.lm,
      usage: reply.usage,
      timings: { ...reply.timings, total_ms: performance.now() - started },
      worker: reply.worker,
    };
  }

  async close(): Promise<void> {
    this.discovery.stop();
    if (this.sweeper) clearInterval(this.sweeper);
    this.consumerLag?.stop();
    this.resilience.shutdown();
    await this.dlq?.stop();
    for (const [id, p] of this.pending) {
      p.reject(new TransportError(`router closed before request ${id} was answered`));
    }
    this.pending.clear();
    this.sub?.unsubscribe();
    this.statusSub?.unsubscribe();
    if (this.ownsConnection) await this.nc.drain();
  }
}
