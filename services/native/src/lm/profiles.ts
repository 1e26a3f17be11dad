/**
 * The operator's LM policy, read from the environment the way a worker reads it
 * (workers/dspex_worker/lm/profiles.py; schemas/lm-profiles.schema.json; docs/security.md, "LM profiles and
 * provider keys"): named profiles, the default one, and the endpoints a request may name itself. The native
 * engine reads the same variables as the workers, so one configuration serves both engines; a bad source is an
 * LMProfilesError naming the source and the field.
 *
 * Sources, a later one replacing an earlier one's profile of the same name: DSPEX_LM_PROFILES_FILE (a JSON file),
 * DSPEX_LM_PROFILES (the same document as JSON text), DSPEX_LM (+ DSPEX_LM_API_BASE, DSPEX_LM_API_KEY_ENV,
 * DSPEX_LM_ADAPTER, DSPEX_LM_NUM_RETRIES: the profile `default`). DSPEX_LM_DEFAULT_PROFILE names the default
 * (else the documents' `default_profile`, else `default` when there is one). DSPEX_LM_ALLOW_ENDPOINTS adds
 * allow-list entries: JSON (an array of URLs or entries) or URLs separated by commas or whitespace.
 */
import { readFileSync } from "node:fs";
import { LMConfigError, ValidationError, checkLmProfiles, type LMEndpoint, type LMProfile, type LMProfiles } from "@dspex/protocol";
import { normalizeUrl, UrlProblem } from "./url.js";

/** The knobs a profile sets and a request may change (request.schema.json#/definitions/lm). */
export const KNOBS = ["temperature", "max_tokens", "cache", "num_retries", "adapter"] as const;
export type Knob = (typeof KNOBS)[number];
export type Knobs = Partial<Pick<LMProfile, Knob>>;
export const DEFAULT_PROFILE = "default";

/** The operator's LM configuration is wrong: `field` names the source (variable or file) and the field in it. */
export class LMProfilesError extends LMConfigError {}

export interface Profile {
  readonly name: string;
  readonly model: string;
  /** The model and the other models a request may ask for. */
  readonly models: ReadonlySet<string>;
  /** Normalized; undefined: the provider's own endpoint. */
  readonly apiBase: string | undefined;
  /** undefined: no key is sent (a placeholder). */
  readonly apiKeyEnv: string | undefined;
  readonly knobs: Readonly<Knobs>;
}

export interface Endpoint {
  readonly url: string;
  /** The only key variable a request may name for it. */
  readonly apiKeyEnv: string | undefined;
  /** undefined: any openai/<model>. */
  readonly models: ReadonlySet<string> | undefined;
}

export interface LMPolicy {
  readonly profiles: ReadonlyMap<string, Profile>;
  readonly default: string | undefined;
  /** By normalized URL. */
  readonly endpoints: ReadonlyMap<string, Endpoint>;
}

function fail(source: string, message: string, field: string): never {
  throw new LMProfilesError(`${source}: ${message}`, { field: field ? `${source}: ${field}` : source });
}

function checked(document: unknown, source: string): LMProfiles {
  try {
    checkLmProfiles(document);
  } catch (err) {
    if (err instanceof ValidationError) fail(source, err.message, err.field ?? "");
    throw err;
  }
  return document as LMProfiles;
}

function json(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    fail(source, `not valid JSON: ${(err as Error).message}`, "");
  }
}

function url(value: string, source: string, field: string): string {
  try {
    return normalizeUrl(value);
  } catch (err) {
    if (err instanceof UrlProblem) fail(source, `${field}: ${err.message}`, field);
    throw err;
  }
}

function profile(name: string, raw: LMProfile, source: string): Profile {
  const where = `profiles.${name}`;
  const others = raw.models ?? [];
  if (raw.api_base === undefined) {
    // Without an endpoint the provider decides where the key goes: keep a profile's models at one provider.
    const provider = raw.model.split("/", 1)[0];
    others.forEach((other, i) => {
      if (other.split("/", 1)[0] !== provider) {
        fail(
          source,
          `${where}.models[${i}]: '${other}' is not a ${provider}/ model; without api_base a profile's models must share its provider ` +
            "(define another profile for another provider)",
          `${where}.models[${i}]`,
        );
      }
    });
  }
  const knobs: Knobs = {};
  for (const k of KNOBS) if (raw[k] !== undefined) (knobs as Record<string, unknown>)[k] = raw[k];
  return {
    name,
    model: raw.model,
    models: new Set([raw.model, ...others]),
    apiBase: raw.api_base === undefined ? undefined : url(raw.api_base, source, `${where}.api_base`),
    apiKeyEnv: raw.api_key_env,
    knobs,
  };
}

/** DSPEX_LM and its companions as the profile `default`. */
function envProfile(env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  const model = env.DSPEX_LM;
  if (!model) return undefined;
  const raw: Record<string, unknown> = { model };
  if (env.DSPEX_LM_API_BASE) raw.api_base = env.DSPEX_LM_API_BASE;
  if (env.DSPEX_LM_API_KEY_ENV) raw.api_key_env = env.DSPEX_LM_API_KEY_ENV;
  if (env.DSPEX_LM_ADAPTER) raw.adapter = env.DSPEX_LM_ADAPTER;
  if (env.DSPEX_LM_NUM_RETRIES) {
    if (!/^\s*[+-]?\d+\s*$/.test(env.DSPEX_LM_NUM_RETRIES)) {
      fail("DSPEX_LM_NUM_RETRIES", "must be a non-negative integer", "");
    }
    raw.num_retries = Number(env.DSPEX_LM_NUM_RETRIES);
  }
  return raw;
}

/** DSPEX_LM_ALLOW_ENDPOINTS: JSON (`[url | {url, api_key_env?, models?}, …]`) or URLs separated by commas or whitespace. */
function allowList(text: string): unknown[] {
  if (text.trimStart().startsWith("[")) {
    const value = json(text, "DSPEX_LM_ALLOW_ENDPOINTS");
    return Array.isArray(value) ? value.map((v) => (typeof v === "string" ? { url: v } : v)) : [value];
  }
  return text
    .trim()
    .split(/[\s,]+/)
    .filter((u) => u)
    .map((u) => ({ url: u }));
}

/** The operator's LM policy from an environment (see the module's comment). */
export function loadPolicy(env: NodeJS.ProcessEnv = process.env): LMPolicy {
  const documents: Array<[string, LMProfiles]> = [];
  const path = env.DSPEX_LM_PROFILES_FILE;
  if (path) {
    const source = `DSPEX_LM_PROFILES_FILE ${path}`;
    let content: string;
    try {
      content = readFileSync(path, "utf8");
    } catch (err) {
      fail(source, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, "");
    }
    documents.push([source, checked(json(content, source), source)]);
  }
  if (env.DSPEX_LM_PROFILES) {
    documents.push(["DSPEX_LM_PROFILES", checked(json(env.DSPEX_LM_PROFILES, "DSPEX_LM_PROFILES"), "DSPEX_LM_PROFILES")]);
  }
  const raw = envProfile(env);
  if (raw !== undefined) documents.push(["DSPEX_LM", checked({ profiles: { [DEFAULT_PROFILE]: raw } }, "DSPEX_LM")]);
  if (env.DSPEX_LM_ALLOW_ENDPOINTS) {
    const entries = allowList(env.DSPEX_LM_ALLOW_ENDPOINTS);
    documents.push(["DSPEX_LM_ALLOW_ENDPOINTS", checked({ allow_endpoints: entries }, "DSPEX_LM_ALLOW_ENDPOINTS")]);
  }

  const profiles = new Map<string, Profile>();
  const endpoints = new Map<string, Endpoint>();
  let defaultName: string | undefined;
  let defaultSource = "";
  for (const [source, document] of documents) {
    for (const [name, p] of Object.entries(document.profiles ?? {})) profiles.set(name, profile(name, p, source));
    (document.allow_endpoints ?? []).forEach((entry: LMEndpoint, i) => {
      const u = url(entry.url, source, `allow_endpoints[${i}].url`);
      endpoints.set(u, { url: u, apiKeyEnv: entry.api_key_env, models: entry.models ? new Set(entry.models) : undefined });
    });
    if (document.default_profile !== undefined) {
      defaultName = document.default_profile;
      defaultSource = source;
    }
  }
  if (env.DSPEX_LM_DEFAULT_PROFILE) {
    defaultName = env.DSPEX_LM_DEFAULT_PROFILE;
    defaultSource = "DSPEX_LM_DEFAULT_PROFILE";
  }
  if (defaultName !== undefined && !profiles.has(defaultName)) {
    const known = [...profiles.keys()].sort().join(", ") || "none";
    const message = `names profile '${defaultName}', which is not defined (profiles: ${known})`;
    if (defaultSource === "DSPEX_LM_DEFAULT_PROFILE") fail(defaultSource, message, "");
    fail(defaultSource, `default_profile: ${message}`, "default_profile");
  }
  if (defaultName === undefined && profiles.has(DEFAULT_PROFILE)) defaultName = DEFAULT_PROFILE;
  return { profiles, default: defaultName, endpoints };
}
