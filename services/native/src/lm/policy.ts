/**
 * A request's `lm` map under the operator's policy (profiles.ts): which model, which endpoint, whose key — the
 * worker's rules (workers/dspex_worker/lm/policy.py), with the same refusals and the same messages, so a call gets
 * the same answer from either engine.
 *
 * - No `api_base`: the named profile (`lm.profile`, else the default). `model` may be the profile's or one of its
 *   `models`; `api_key_env` may only repeat the profile's own; the knobs override the profile's.
 * - `api_base`: only an endpoint of the operator's allow-list (and never with a profile); `api_key_env` only the
 *   variable its entry names; `model` one of the entry's models, or any `openai/<model>` when it names none.
 * - A `dspex/*` model is a worker's test model: it resolves (the worker answers it), but no native engine runs it.
 *
 * Every refusal is an LMConfigError naming the field. Messages name profiles and endpoints, and never say whether an
 * environment variable exists.
 */
import { LMConfigError, type LMConfig } from "@dspex/protocol";
import { KNOBS, type Knobs, type LMPolicy, type Profile } from "./profiles.js";
import { normalizeUrl, UrlProblem } from "./url.js";

/** The OpenAI-compatible protocol: what an allow-listed endpoint speaks unless its entry names models. */
export const OPENAI_COMPATIBLE = "openai/";
/** The workers' test-model provider (workers/dspex_worker/lm/echo.py). */
export const TEST_MODEL_PROVIDER = "dspex";

/** What a request's `lm` comes to: the client's settings, and the one key variable that may go with them. */
export interface ResolvedLM {
  readonly model: string;
  /** Normalized; undefined: the provider's own endpoint. */
  readonly apiBase: string | undefined;
  /** undefined: no key (a placeholder) is sent. */
  readonly keyEnv: string | undefined;
  /** "profile 'x'" or "endpoint <url>", for messages. */
  readonly owner: string;
  /** The field a missing key is reported on. */
  readonly keyField: string;
  readonly knobs: Readonly<Knobs>;
  /** The profile it came from, if any. */
  readonly profile: string | undefined;
}

function refuse(field: string, message: string): LMConfigError {
  return new LMConfigError(`${field}: ${message}`, { field });
}

function pickProfile(policy: LMPolicy, name: string | undefined): Profile {
  if (name === undefined) {
    if (policy.default === undefined) {
      throw new LMConfigError(
        "lm: no LM configured: the request names no profile and this worker has no default profile " +
          "(its operator sets DSPEX_LM or DSPEX_LM_PROFILES)",
        { field: "lm" },
      );
    }
    name = policy.default;
  }
  const profile = policy.profiles.get(name);
  if (profile === undefined) {
    const known = [...policy.profiles.keys()].sort().join(", ") || "none";
    throw refuse("lm.profile", `unknown profile '${name}'; this worker's profiles: ${known}`);
  }
  return profile;
}

function fromProfile(policy: LMPolicy, lm: LMConfig, knobs: Knobs): ResolvedLM {
  const profile = pickProfile(policy, lm.profile);
  if (lm.api_key_env !== undefined && lm.api_key_env !== profile.apiKeyEnv) {
    throw refuse(
      "lm.api_key_env",
      `a request cannot choose the key: '${lm.api_key_env}' is not what profile '${profile.name}' sends ` +
        "(the operator names each profile's key)",
    );
  }
  const model = lm.model || profile.model;
  if (!profile.models.has(model)) {
    throw refuse("lm.model", `profile '${profile.name}' does not offer '${model}'; it offers: ${[...profile.models].sort().join(", ")}`);
  }
  return {
    model,
    apiBase: profile.apiBase,
    keyEnv: profile.apiKeyEnv,
    owner: `profile '${profile.name}'`,
    keyField: "lm.profile",
    knobs: { ...profile.knobs, ...knobs },
    profile: profile.name,
  };
}

function fromEndpoint(policy: LMPolicy, lm: LMConfig, knobs: Knobs): ResolvedLM {
  if (lm.profile !== undefined) {
    throw refuse("lm.api_base", "a request naming a profile cannot change its endpoint (the profile holds it)");
  }
  let url: string;
  try {
    url = normalizeUrl(String(lm.api_base));
  } catch (err) {
    if (err instanceof UrlProblem) throw refuse("lm.api_base", err.message);
    throw err;
  }
  const entry = policy.endpoints.get(url);
  if (entry === undefined) {
    throw refuse(
      "lm.api_base",
      `this worker does not let a request choose the endpoint ${url}: name one of its operator's profiles ` +
        "(lm.profile), or ask the operator to allow-list the endpoint (DSPEX_LM_ALLOW_ENDPOINTS)",
    );
  }
  const keyEnv = lm.api_key_env;
  if (keyEnv !== undefined && keyEnv !== entry.apiKeyEnv) {
    throw refuse("lm.api_key_env", `'${keyEnv}' may not be sent to ${url}: a request names only the key the operator allow-listed for it`);
  }
  const model = lm.model;
  if (model === undefined) throw refuse("lm.model", "is required with lm.api_base (an endpoint has no default model)");
  if (entry.models !== undefined && !entry.models.has(model)) {
    throw refuse("lm.model", `${url} offers only: ${[...entry.models].sort().join(", ")}`);
  }
  if (entry.models === undefined && !model.startsWith(OPENAI_COMPATIBLE)) {
    throw refuse("lm.model", `${url} takes openai/<model> (the OpenAI-compatible protocol); its allow-list entry names no other models`);
  }
  return { model, apiBase: url, keyEnv, owner: `endpoint ${url}`, keyField: "lm.api_key_env", knobs, profile: undefined };
}

/** The LM a request's (schema-checked) `lm` map names under the policy; undefined is the default profile. */
export function resolveLm(policy: LMPolicy, lm: LMConfig | undefined): ResolvedLM {
  const config = lm ?? {};
  const knobs: Knobs = {};
  for (const k of KNOBS) if (config[k] !== undefined) (knobs as Record<string, unknown>)[k] = config[k];
  if (config.api_base !== undefined) return fromEndpoint(policy, config, knobs);
  const model = config.model;
  if (typeof model === "string" && model.startsWith(`${TEST_MODEL_PROVIDER}/`)) {
    if (config.api_key_env !== undefined) throw refuse("lm.api_key_env", `a test model ('${model}') takes no key`);
    return { model, apiBase: undefined, keyEnv: undefined, owner: `test model '${model}'`, keyField: "lm", knobs, profile: undefined };
  }
  return fromProfile(policy, config, knobs);
}
