/**
 * The client: typed DSPy calls from TypeScript over the bus. It only calls — resolve and validate the
 * signature and inputs, build the envelope, publish, await the reply, validate the outputs — with tracing,
 * idempotency, retries, strict affinity, circuit breakers and worker discovery as interceptors composed
 * once around the transport (call.ts). Connecting opens one inbox subscription and checks that the bus it
 * needs exists; nothing else runs in the background. The bus is provisioned by `dspex bus apply`, never here.
 *
 * ```ts
 * const client = await Client.connect({ servers: "nats://127.0.0.1:4222" });
 * const { outputs } = await client.predict("question -> answer", { question: "2+3?" });
 * ```
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import {
  OPERATION_POOLS,
  POOLS,
  PayloadTooLarge,
  ValidationError,
  checkModuleOptions,
  encode,
  isPool,
  type LMConfig,
  type Operation,
  type Pool,
  type ReplyOk,
} from "@dspex/protocol";
import { resolveSignature, validateInputs, validateOutputs, type SignatureInput } from "@dspex/native";
import { busSettings, busSpec, connectNats, formatDrift, requireBus, type BusAccess, type BusSettingsOverrides, type Difference, type PoolSettings } from "@dspex/bus";
import { createLogger } from "@dspex/observability";
import { compose, type CallInput, type CallOptions, type CallRequest, type CallResult, type Caller, type Interceptor } from "./call.js";
import { discoveryInterceptor, WorkerDiscovery, type DiscoveryOptions } from "./discovery.js";
import { affinityInterceptor } from "./interceptors/affinity.js";
import { breakerInterceptor, breakerSettings, Breakers, type BreakerOptions } from "./interceptors/breaker.js";
import { idempotencyInterceptor, newRequestId, retryInterceptor, retryPolicy, type RetryPolicy } from "./interceptors/retry.js";
import { tracingInterceptor } from "./interceptors/tracing.js";
import { ExecutionRouter, type EngineSnapshot } from "./engine/router.js";
import { enginePolicy, type EnginePolicyOptions } from "./engine/policy.js";
import type { NativeEngine, NativeEngineOptions } from "@dspex/native";
import { decodeVectors, embedRequest, type EmbedCallOptions, type Embeddings } from "./embed.js";
import { Modules } from "./modules.js";
import { Optimizer, type CompileJob, type CompileOptions } from "./optimize.js";
import { ProgramStore, type CreateProgramOptions, type ProgramVersion } from "./programs.js";
import { Chats, type ChatOptions, type ChatResult } from "./chat.js";
import { SessionTable } from "./sessions.js";
import { ProgramStream, type StreamOptions } from "./stream.js";
import { PackagedProgram, type PackagedProgramOptions } from "./packaged.js";
import { completeRequest, completionsOf, type ChatMessage, type CompleteCallOptions, type Completion } from "./complete.js";
import { ToolRegistry } from "./tools.js";
import { Transport } from "./transport.js";
import { DirectLane, type DirectLaneOptions } from "./lanes/direct.js";
import { chooseLane, defaultLane, directLaneOptions, laneSender, type LaneChoice } from "./lanes/index.js";

export interface ClientOptions extends BusAccess {
  /** Use this connection instead of opening one (the client will not close it). */
  connection?: NatsConnection;
  /** Default LM for calls that name none; else the workers' default. */
  lm?: LMConfig;
  /** The deployment's bus settings (pools' timeouts and payload limits; replicas and limits for drift). */
  bus?: BusSettingsOverrides;
  /** Check on connect that the request stream exists (default true). */
  verifyBus?: boolean;
  /** Fail fast with NoWorkersError when a pool has no live worker (default true). */
  checkWorkers?: boolean;
  breakers?: BreakerOptions;
  retry?: Partial<RetryPolicy>;
  /** Run a call's `fallback` when a breaker is open (default true; DSPEX_BREAKER_FALLBACK=0 turns it off). */
  fallbackOnOpen?: boolean;
  discovery?: DiscoveryOptions;
  /** Extra interceptors, outermost first, placed between tracing and the client's own. */
  interceptors?: Interceptor[];
  /** Connection name shown by the server (default dspex-client). */
  name?: string;
  /** The default delivery lane of calls (lanes/index.ts; default DSPEX_LANE, else `auto`). */
  lane?: LaneChoice;
  /** The direct lane's heartbeat settings (DSPEX_DIRECT_HEARTBEAT_MS, DSPEX_DIRECT_LOST_MS). */
  direct?: DirectLaneOptions;
  /** Durable lane: workers re-send a reply until this client confirms it (default true; DSPEX_CONFIRM_REPLIES=0). */
  confirmReplies?: boolean;
  /**
   * The execution router's policy (engine/policy.ts; default DSPEX_ENGINE*, python) and the native engine: its
   * options (LM profiles and keys from `env`, default process.env) or an engine to share.
   */
  engine?: EnginePolicyOptions & { native?: NativeEngineOptions | NativeEngine };
}

export class Client implements Caller {
  readonly pools: Record<Pool, PoolSettings>;
  readonly breakers: Breakers;
  readonly discovery: WorkerDiscovery;
  readonly sessions: SessionTable;
  /** Multi-turn conversations kept in the session (chat.ts). */
  readonly chats: Chats;
  readonly programs: ProgramStore;
  /** Where the bus differs from this client's idea of the deployment (reported, never acted on). */
  readonly busDrift: Difference[];
  /** Counters since the client was made. */
  readonly counts = { retries: 0, failedFast: 0, fallbacks: 0 };
  /** The default lane of calls that name none. */
  readonly lane: LaneChoice;
  /** Where each call runs: the native predictor or a worker (engine/router.ts). */
  readonly router: ExecutionRouter;
  private readonly transport: Transport;
  private readonly direct: DirectLane;
  private readonly chain: (input: CallInput) => Promise<ReplyOk>;
  private toolRegistry: ToolRegistry | undefined;
  private moduleOps: Modules | undefined;
  /** Handles of the packaged programs the fleet has advertised (program()). */
  private readonly packaged = new Map<string, PackagedProgram>();
  private optimizerJobs: Optimizer | undefined;

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly options: ClientOptions,
    drift: Difference[],
  ) {
    const settings = busSettings(options.bus);
    this.pools = settings.pools;
    this.busDrift = drift;
    this.transport = new Transport(nc, jetstream(nc), this.pools, {
      confirmReplies: options.confirmReplies ?? process.env.DSPEX_CONFIRM_REPLIES !== "0",
    });
    this.discovery = new WorkerDiscovery(nc, options.discovery);
    this.lane = defaultLane(options.lane);
    this.direct = new DirectLane(nc, this.transport, this.pools, (pool) => this.discovery.forget(pool as Pool), directLaneOptions(options.direct));
    this.sessions = new SessionTable(nc);
    this.chats = new Chats(nc, this);
    this.programs = new ProgramStore(nc);
    this.breakers = new Breakers(breakerSettings(options.breakers));
    const fallbackOnOpen = options.fallbackOnOpen ?? process.env.DSPEX_BREAKER_FALLBACK !== "0";
    const retry = retryPolicy(options.retry);
    const { native, ...policy } = options.engine ?? {};
    this.router = new ExecutionRouter(enginePolicy(policy), native, {
      breakers: this.breakers,
      counts: this.counts,
      retry,
      fallbackOnOpen,
      programs: this.programs,
      sessions: this.sessions,
      envelope: (input) => this.transport.envelope(input),
    });
    const interceptors: Interceptor[] = [
      tracingInterceptor,
      ...(options.interceptors ?? []),
      this.router.interceptor(),
      idempotencyInterceptor(),
      retryInterceptor(retry, this.transport, this.counts),
      affinityInterceptor(this.sessions, this.discovery),
      breakerInterceptor(this.breakers, this.counts, fallbackOnOpen, "pool"),
      ...(options.checkWorkers === false ? [] : [discoveryInterceptor(this.discovery)]),
      breakerInterceptor(this.breakers, this.counts, fallbackOnOpen, "lm"),
    ];
    this.chain = compose(interceptors, laneSender(this.transport, this.direct, this.lane));
  }

  static async connect(options: ClientOptions = {}): Promise<Client> {
    const nc = options.connection ?? (await connectNats({ servers: options.servers, creds: options.creds, tls: options.tls, name: options.name ?? "dspex-client" }));
    try {
      let drift: Difference[] = [];
      if (options.verifyBus !== false) {
        drift = await requireBus(nc, { streams: ["requests"] }, busSpec(busSettings(options.bus)));
        if (drift.length > 0) {
          createLogger("dspex.client").warn("the bus differs from this client's deployment settings; clients never change it (run `dspex bus apply`)", {
            drift: formatDrift(drift),
          });
        }
      }
      return new Client(nc, options.connection === undefined, options, drift);
    } catch (err) {
      if (options.connection === undefined) await nc.close();
      throw err;
    }
  }

  /**
   * One turn of a conversation in `session`: the earlier turns go to the signature's `dspy.History` input, the
   * new one is appended (default signature `question: str, history: dspy.History -> answer: str`).
   */
  chat<O extends Record<string, unknown> = { answer: string }>(session: string, message: string | Record<string, unknown>, options: ChatOptions = {}): Promise<ChatResult<O>> {
    return this.chats.send<O>(session, message, options);
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

  /** One raw LM call (op `complete`, complete.ts): chat messages in, the completions out. */
  async complete(messages: readonly ChatMessage[], options: CompleteCallOptions = {}): Promise<Completion> {
    const { module, ...rest } = options;
    const reply = await this.send<Record<string, unknown>>(completeRequest(messages, module), rest);
    return { completions: completionsOf(reply.outputs), lm: reply.lm, usage: reply.usage, worker: reply.worker };
  }

  /** Embeddings of `texts` on the gpu pool (op `embed`, embed.ts): one Float32Array per text, in order. */
  async embed(texts: string[], options: EmbedCallOptions = {}): Promise<Embeddings> {
    const { module, ...rest } = options;
    const reply = await this.send<Record<string, unknown>>(embedRequest(texts, module), rest);
    const { vectors, dim } = decodeVectors(reply.outputs);
    return { vectors, dim, model: String(reply.outputs.model), truncated: (reply.outputs.truncated as number[] | undefined) ?? [], usage: reply.usage, worker: reply.worker };
  }

  /**
   * A user's packaged DSPy program served by the fleet (docs/programs.md): `await client.program("qa").call({...})`.
   * Its fields, pool and version are learnt from the workers' advertisements on first use; once the fleet has
   * advertised it, the same handle is returned for that name (its options are the first call's), so callers
   * (the HTTP API, pipeline steps) need not keep their own. Names the fleet does not serve are not kept.
   */
  program<I extends Record<string, unknown> = Record<string, unknown>, O extends Record<string, unknown> = Record<string, unknown>>(
    name: string,
    options: PackagedProgramOptions = {},
  ): PackagedProgram<I, O> {
    const known = this.packaged.get(name);
    if (known) return known as unknown as PackagedProgram<I, O>;
    return new PackagedProgram<I, O>(this, name, options, (served) => this.packaged.set(name, served as unknown as PackagedProgram));
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
    const result = await this.send<O>(
      {
        op: definition.module,
        signature: definition.signature,
        inputs,
        program: { id: definition.id, version },
        ...(definition.package ? { module: { name: definition.package } } : {}),
      },
      { ...options, session: options.session ?? definition.session },
    );
    return { ...result, version };
  }

  /** Any operation by name, with its module options (checked against the op's schema). */
  call<O>(op: Operation, signature: SignatureInput, inputs: Record<string, unknown>, options: CallOptions & { module?: Record<string, unknown> } = {}): Promise<CallResult<O>> {
    const { module, ...rest } = options;
    return this.send<O>({ op, signature, inputs, ...(module ? { module } : {}) }, rest);
  }

  /** Sends one request through the interceptors; the outputs come back validated against the signature. */
  async send<O>(request: CallRequest, options: CallOptions = {}): Promise<CallResult<O>> {
    const started = performance.now();
    const pool = options.pool ?? OPERATION_POOLS[request.op] ?? "general";
    if (!isPool(pool)) {
      throw new ValidationError(`unknown pool ${JSON.stringify(pool)}; pools: ${POOLS.join(", ")}`, { field: "pool", details: { pool, pools: [...POOLS] } });
    }
    // size before any validation (docs/security.md): an oversized value costs one encoding, not a parse
    const limit = this.pools[pool].maxPayloadBytes;
    const inputBytes = encode(request.inputs).byteLength;
    if (inputBytes > limit) {
      throw new PayloadTooLarge(`the inputs are ${inputBytes} bytes; pool '${pool}' accepts at most ${limit}`, {
        field: "inputs",
        details: { size: inputBytes, limit },
      });
    }
    chooseLane({ op: request.op, options }, this.lane); // a bad `lane` is a ValidationError before anything runs
    const signature = resolveSignature(request.signature, options.instructions);
    const inputs = request.rawInputs ? request.inputs : validateInputs(signature, request.inputs);
    const module = options.demos ? { ...request.module, demos: options.demos } : request.module;
    checkModuleOptions(request.op, module ?? {});
    const timeoutMs = options.timeoutMs ?? this.pools[pool].defaultTimeoutMs;
    const reply = await this.chain({
      op: request.op,
      pool,
      signature,
      inputs,
      request: module ? { ...request, module } : request,
      options,
      lm: options.lm ?? this.options.lm,
      requestId: options.requestId ?? newRequestId(),
      deadline: Date.now() + timeoutMs,
      headers: {},
    });
    const outputs = request.rawOutputs
      ? reply.outputs
      : validateOutputs(signature, reply.outputs, {
          extra: [...(request.op === "chain_of_thought" ? ["reasoning"] : []), ...(request.extraOutputs ?? [])],
        });
    return {
      id: reply.id,
      outputs: outputs as O,
      lm: reply.lm,
      usage: reply.usage,
      timings: { ...reply.timings, total_ms: performance.now() - started },
      worker: reply.worker,
      ...(reply.scores ? { scores: reply.scores } : {}),
      ...(reply.extra ? { extra: reply.extra } : {}),
    };
  }

  /** Tools served from this process to ReAct agents (a subscription per tool, only once one is served). */
  get tools(): ToolRegistry {
    this.toolRegistry ??= new ToolRegistry(this.nc);
    return this.toolRegistry;
  }

  /** The DSPy modules beyond Predict and ChainOfThought: ReAct, RLM, BestOfN, Parallel, … (modules.ts). */
  get modules(): Modules {
    this.moduleOps ??= new Modules(this, () => this.tools);
    return this.moduleOps;
  }

  /** Optimizer jobs (optimize.ts). */
  get optimizer(): Optimizer {
    this.optimizerJobs ??= new Optimizer(this);
    return this.optimizerJobs;
  }

  /** Starts an optimizer job on the optimizer pool; resolves with its handle as soon as it is queued. */
  compile(options: CompileOptions): Promise<CompileJob> {
    return this.optimizer.compile(options);
  }

  /**
   * Streams a running program: an async iterator of token and status events, then the typed result
   * (`for await (const e of client.stream("predict", sig, inputs)) …`; `await stream.result`).
   */
  stream<O extends Record<string, unknown> = Record<string, unknown>>(
    op: Exclude<Operation, "parallel" | "majority" | "compile" | "evaluate">,
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: Record<string, unknown> = {},
    options: StreamOptions = {},
  ): ProgramStream<O> {
    const wire = op === "react" && Array.isArray(module.tools) ? { ...module, tools: this.modules.toolSpecs(module.tools as never) } : module;
    const extraOutputs =
      op === "chain_of_thought" || op === "react" || module.module === "chain_of_thought" ? ["reasoning"] : op === "multi_chain_comparison" ? ["rationale"] : [];
    return ProgramStream.start<O>(this, op, signature, inputs, { ...options, module: wire, extraOutputs });
  }

  /** Streams a stored program (latest or a named version). */
  async streamProgram<O extends Record<string, unknown> = Record<string, unknown>>(
    programId: string,
    inputs: Record<string, unknown>,
    options: StreamOptions & { version?: number } = {},
  ): Promise<ProgramStream<O>> {
    const { definition, version } = await this.programs.get(programId, options.version);
    return ProgramStream.start<O>(this, definition.module, definition.signature, inputs, {
      ...options,
      session: options.session ?? definition.session,
      program: { id: definition.id, version },
      extraOutputs: definition.module === "chain_of_thought" ? ["reasoning"] : [],
    });
  }

  /** For `dspex status` (a router answers with it) and tests. */
  snapshot() {
    const engines: EngineSnapshot = this.router.snapshot();
    return {
      breakers: this.breakers.states(),
      droppedReplies: this.transport.dropped,
      republished: this.transport.republished,
      lostDirect: this.direct.lost,
      ...this.counts,
      engines,
    };
  }

  /** The client's default LM (calls that name none use it). */
  get defaultLm(): LMConfig | undefined {
    return this.options.lm;
  }

  async close(): Promise<void> {
    await this.toolRegistry?.stop();
    this.breakers.shutdown();
    await this.transport.close();
    if (this.ownsConnection) await this.nc.drain();
  }
}
