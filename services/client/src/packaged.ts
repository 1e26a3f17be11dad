/**
 * Users' packaged DSPy programs (docs/programs.md): `client.program("qa").call({question})`.
 *
 * The handle learns the program from what the workers advertise (their status endpoints: fields as wire
 * types, pool, package version) and then calls it like a built-in module — op `program` with `module.name`,
 * the advertised fields as the signature, sent to the program's pool — so the inputs are checked before
 * publish and the outputs after the reply by the same code as every call, and sessions, lanes, retries,
 * breakers and tracing apply unchanged. The advertisement is cached; a worker running another version of the
 * program with other fields answers a ValidationError on `signature.*`, after which the handle asks the fleet
 * again once; a reply naming another package version (`extra.program.version`, same fields) makes the next
 * `describe` ask again.
 */
import { UnknownProgram, ValidationError, isPool, type ProgramRef, type SignatureWire } from "@dspex/protocol";
import { servedPrograms, workerStatuses, type AdvertisedProgram } from "@dspex/bus";
import type { CallOptions, CallResult, Caller } from "./call.js";
import type { ProgramVersion } from "./programs.js";
import { ProgramStream, type StreamOptions } from "./stream.js";

export interface PackagedProgramOptions {
  /** How long asking the fleet for its programs waits for workers to answer (default 500 ms). */
  discoverMs?: number;
}

export class PackagedProgram<I extends Record<string, unknown> = Record<string, unknown>, O extends Record<string, unknown> = Record<string, unknown>> {
  private advert: AdvertisedProgram | undefined;

  constructor(
    private readonly client: Caller,
    readonly name: string,
    private readonly options: PackagedProgramOptions = {},
    /** Told once the fleet has advertised the program (the client keeps served handles). */
    private readonly onServed?: (handle: PackagedProgram<I, O>) => void,
  ) {}

  /** The program as the fleet advertises it (asked once, then cached; `refresh` asks again). */
  async describe(): Promise<AdvertisedProgram> {
    if (this.advert === undefined) {
      this.advert = await this.lookup();
      this.onServed?.(this);
    }
    return this.advert;
  }

  async refresh(): Promise<AdvertisedProgram> {
    this.advert = undefined;
    return this.describe();
  }

  /**
   * Stores a version of the program (KV `dspex_programs`, `module: "program"`): what optimizer jobs start from
   * (`client.compile({ program: {id, version}, … })`) and store their result under; call a version with
   * `call(inputs, { stored: {id, version} })` or `client.execute(id)`.
   */
  async store(options: { id?: string; session?: string } = {}): Promise<ProgramVersion> {
    const advert = await this.describe();
    return this.client.programs.create({ module: "program", package: this.name, signature: signatureOf(advert), ...options });
  }

  /** Runs the program on its pool (a stored version of it with `stored`); outputs checked against its fields. */
  async call(inputs: I, options: CallOptions & { stored?: ProgramRef } = {}): Promise<CallResult<O>> {
    try {
      const advert = await this.describe();
      const result = await this.send(advert, inputs, options);
      // the worker names the package version that ran: another one (same fields) means the fleet was upgraded
      const ran = (result.extra?.program as { version?: string | null } | undefined)?.version;
      if (ran !== undefined && ran !== advert.version && this.advert === advert) this.advert = undefined;
      return result;
    } catch (err) {
      // the fleet now serves another version of the program: learn it again, once
      if (!(err instanceof ValidationError && err.field?.startsWith("signature."))) throw err;
      return this.send(await this.refresh(), inputs, options);
    }
  }

  /** Streams the program's tokens and status events (its predictors' outputs), then the typed result. */
  async stream(inputs: I, options: StreamOptions = {}): Promise<ProgramStream<O>> {
    const advert = await this.describe();
    return ProgramStream.start<O>(this.client, "program", signatureOf(advert), inputs, {
      ...options,
      pool: options.pool ?? poolOf(advert),
      module: { name: this.name },
    });
  }

  private send(advert: AdvertisedProgram, inputs: I, options: CallOptions & { stored?: ProgramRef }): Promise<CallResult<O>> {
    const { stored, ...rest } = options;
    return this.client.send<O>(
      { op: "program", signature: signatureOf(advert), inputs, module: { name: this.name }, ...(stored ? { program: stored } : {}) },
      { ...rest, pool: rest.pool ?? poolOf(advert) },
    );
  }

  private async lookup(): Promise<AdvertisedProgram> {
    const statuses = await workerStatuses(this.client.nc, this.options.discoverMs ?? 500);
    const served = servedPrograms(statuses);
    const advert = served.get(this.name);
    if (advert === undefined) {
      const available = [...served.keys()].sort();
      const failed = statuses.flatMap((s) => s.programs?.failures ?? []).find((f) => f.name === this.name);
      throw new UnknownProgram(
        failed
          ? `program: ${JSON.stringify(this.name)} is declared but not served: ${failed.error}`
          : `program: ${JSON.stringify(this.name)} is not served by the fleet; available: ${available.join(", ") || "none"}`,
        { field: "program", details: { available, ...(failed ? { error: failed.error } : {}) } },
      );
    }
    return advert;
  }
}

function signatureOf(advert: AdvertisedProgram): SignatureWire {
  return { inputs: advert.inputs, outputs: advert.outputs };
}

function poolOf(advert: AdvertisedProgram): CallOptions["pool"] {
  if (!isPool(advert.pool)) {
    throw new ValidationError(`program ${advert.name}: advertised pool ${JSON.stringify(advert.pool)} is not a pool`, { field: "pool" });
  }
  return advert.pool;
}
