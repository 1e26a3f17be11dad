/**
 * Parity: the native engine's LM policy (services/native/src/lm) against the worker's
 * (workers/dspex_worker/lm/profiles.py, policy.py), on one corpus: endpoints normalized (or refused) the same way
 * with the same message, the same profiles, default and allow-list read from the same variables, and every
 * request's `lm` resolved to the same model, endpoint and key variable — or refused with the same LMConfigError
 * (field and message). One Python process (test/parity/lm_policy.py) answers the whole corpus.
 *
 *   node --conditions=development --import tsx --test test/parity/lm-policy-parity.test.ts
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LMConfigError, type LMConfig } from "@dspex/protocol";
import { loadPolicy, normalizeUrl, resolveLm, UrlProblem, type LMPolicy } from "@dspex/native";

const root = join(import.meta.dirname, "../..");
const file = join(mkdtempSync(join(tmpdir(), "dspex-policy-")), "lm.json");
writeFileSync(
  file,
  JSON.stringify({
    profiles: {
      fast: { model: "openai/small", api_base: "http://a/v1", temperature: 0.1 },
      big: { model: "openai/big", api_base: "http://b/v1", api_key_env: "BIG_KEY" },
    },
    default_profile: "fast",
    allow_endpoints: [{ url: "http://c/v1/", api_key_env: "C_KEY" }],
  }),
);

const URLS = [
  "http://127.0.0.1:8000/v1/", "HTTPS://API.Example.COM:443/v1", "http://lm.internal:80", "http://[::1]:9000/v1//",
  "ftp://h/v1", "http://user:pw@h/v1", "http://h@evil.example/v1", "http://h/v1?x=1", "http://h/v1#frag",
  "http://h/v1/../admin", "http://h\\@evil/v1", "http:///v1", "http://h:99999/v1", "http://h:0/v1", "http://h:00080/v1",
  "http://h:/v1", "http://h:+1/v1", "http://h:١/v1", "http://h:x/v1", "https://h/v1?", "http://h/v1#", "http://h\t/v1",
  "http://h /v1", "http://Ünïcode.com/v1", "http://h.com./v1", "mailto:x", "http://[fe80::1%25en0]/v1", "http://[::1/v1",
  "http://::1]/v1", "//h/v1", "http:h/v1", "http://-h/v1", "http://h_h/v1", "http://1.2.3.4:8080/v1/", "http://h/%2e%2e/x",
  "http://h/.%2E/x", "http://h/a/./b", "http://h/a/.../b", "http://H.EXAMPLE:8080", "http://h/V1/", "https://h:80/v1",
  "http://h\u00a0/v1", "http://h\u0000/v1", "1http://h/v1", "ht-tp://h/v1", "http://h:8080:90/v1", "http://[::1]:x/v1",
];

const BASE = {
  DSPEX_LM: "openai/test-model",
  DSPEX_LM_API_BASE: "http://double:1/v1",
  DSPEX_LM_PROFILES: JSON.stringify({
    profiles: {
      keyed: {
        model: "openai/big",
        models: ["openai/bigger"],
        api_base: "http://keyed/v1",
        api_key_env: "PROFILE_KEY",
        temperature: 0.3,
        adapter: "json",
      },
      unkeyed: { model: "openai/x", api_key_env: "MISSING_KEY" },
    },
  }),
  DSPEX_LM_ALLOW_ENDPOINTS: JSON.stringify([
    { url: "http://allowed:2/v1", api_key_env: "ALLOWED_KEY" },
    { url: "http://pinned/v1", models: ["x/y"] },
  ]),
};

const POLICIES: Array<{ env: Record<string, string>; mentions?: string[] }> = [
  { env: {} },
  { env: { DSPEX_LM: "openai/m", DSPEX_LM_API_BASE: "http://h:1/v1/", DSPEX_LM_API_KEY_ENV: "K", DSPEX_LM_NUM_RETRIES: "2" } },
  { env: { DSPEX_LM: "openai/m", DSPEX_LM_ADAPTER: "json", DSPEX_LM_NUM_RETRIES: " 3 " } },
  {
    env: {
      DSPEX_LM_PROFILES_FILE: file,
      DSPEX_LM_PROFILES: JSON.stringify({ profiles: { big: { model: "openai/bigger", api_base: "http://b2/v1" } } }),
      DSPEX_LM_ALLOW_ENDPOINTS: "http://d:81/v1, http://e/v1",
    },
  },
  { env: { DSPEX_LM: "openai/m", DSPEX_LM_PROFILES_FILE: file, DSPEX_LM_DEFAULT_PROFILE: "default" } },
  { env: { DSPEX_LM_ALLOW_ENDPOINTS: JSON.stringify(["http://x/v1", { url: "http://y/v1/", models: ["a/b"] }]) } },
  { env: BASE },
  { env: { DSPEX_LM_PROFILES: "{nope" }, mentions: ["DSPEX_LM_PROFILES: not valid JSON"] },
  { env: { DSPEX_LM_PROFILES: '{"profiles": {"x": {}}}' }, mentions: ["DSPEX_LM_PROFILES", "profiles.x.model"] },
  { env: { DSPEX_LM_PROFILES: '{"profiles": {"x": {"model": "m"}}}' }, mentions: ["DSPEX_LM_PROFILES", "profiles.x.model"] },
  { env: { DSPEX_LM_PROFILES: '{"profiles": {"x": {"model": "openai/m", "api_key_env": "A B"}}}' }, mentions: ["profiles.x.api_key_env"] },
  { env: { DSPEX_LM_PROFILES: '{"profiles": {"x": {"model": "openai/m", "url": 1}}}' }, mentions: ["profiles.x", "url"] },
  {
    env: { DSPEX_LM_PROFILES: '{"profiles": {"x": {"model": "openai/m", "models": ["anthropic/c"]}}}' },
    mentions: ["profiles.x.models[0]: 'anthropic/c' is not a openai/ model"],
  },
  { env: { DSPEX_LM: "openai/m", DSPEX_LM_API_BASE: "http://u:p@h/v1" }, mentions: ["DSPEX_LM", "profiles.default.api_base"] },
  { env: { DSPEX_LM: "openai/m", DSPEX_LM_NUM_RETRIES: "x" }, mentions: ["DSPEX_LM_NUM_RETRIES"] },
  { env: { DSPEX_LM_DEFAULT_PROFILE: "ghost" }, mentions: ["DSPEX_LM_DEFAULT_PROFILE: names profile 'ghost'"] },
  { env: { DSPEX_LM_PROFILES: '{"default_profile": "ghost"}' }, mentions: ["DSPEX_LM_PROFILES: default_profile: names profile 'ghost'"] },
  { env: { DSPEX_LM_ALLOW_ENDPOINTS: "http://h/v1?k=1" }, mentions: ["DSPEX_LM_ALLOW_ENDPOINTS: allow_endpoints[0].url"] },
  { env: { DSPEX_LM_PROFILES_FILE: "/nonexistent/lm.json" }, mentions: ["DSPEX_LM_PROFILES_FILE /nonexistent/lm.json"] },
];

const REQUESTS: Array<{ env: Record<string, string>; lm?: LMConfig }> = [
  ...[
    undefined,
    {},
    { model: "openai/test-model", temperature: 0.5, max_tokens: 10, cache: true, num_retries: 1 },
    { profile: "keyed" },
    { profile: "keyed", model: "openai/bigger", temperature: 0.9, max_tokens: 50 },
    { profile: "keyed", adapter: "chat" as const },
    { profile: "keyed", api_key_env: "PROFILE_KEY" },
    { model: "openai/test-model", api_base: "http://evil.example/v1" },
    { model: "openai/test-model", api_base: "http://double:1/v1" },
    { profile: "keyed", api_base: "http://allowed:2/v1" },
    { model: "openai/m", api_base: "http://u:p@allowed:2/v1" },
    { model: "openai/m", api_base: "ftp://allowed:2/v1" },
    { api_key_env: "HOME" },
    { api_key_env: "NO_SUCH_VARIABLE" },
    { api_key_env: "PROFILE_KEY" },
    { profile: "unkeyed" },
    { model: "openai/gpt-4o" },
    { profile: "ghost" },
    { model: "dspex/echo" },
    { model: "dspex/echo", api_key_env: "X" },
    { model: "openai/m", api_base: "HTTP://ALLOWED:2/v1/" },
    { model: "openai/m", api_base: "http://allowed:2/v1", api_key_env: "ALLOWED_KEY" },
    { model: "openai/m", api_base: "http://allowed:2/v1", api_key_env: "PROFILE_KEY" },
    { model: "anthropic/c", api_base: "http://allowed:2/v1" },
    { api_base: "http://allowed:2/v1" },
    { model: "x/y", api_base: "http://pinned/v1" },
    { model: "openai/m", api_base: "http://pinned/v1" },
  ].map((lm) => ({ env: BASE, ...(lm === undefined ? {} : { lm }) })),
  { env: {}, lm: {} },
  { env: {}, lm: { model: "openai/x" } },
  { env: { DSPEX_LM_PROFILES_FILE: file } },
  { env: { DSPEX_LM_PROFILES_FILE: file }, lm: { profile: "big" } },
];

interface PyAnswers {
  urls: Array<{ ok?: string; error?: string }>;
  policies: Array<{ ok?: unknown; error?: string }>;
  requests: Array<Record<string, unknown>>;
}

const py = ((): PyAnswers => {
  const run = spawnSync(join(root, ".venv/bin/python"), [join(import.meta.dirname, "lm_policy.py")], {
    input: JSON.stringify({ urls: URLS, policies: POLICIES.map((p) => ({ env: p.env })), requests: REQUESTS }),
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) throw new Error(`lm_policy.py failed:\n${run.stderr}`);
  return JSON.parse(run.stdout) as PyAnswers;
})();

function summary(policy: LMPolicy): unknown {
  const sorted = <T>(m: ReadonlyMap<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    default: policy.default ?? null,
    profiles: Object.fromEntries(
      sorted(policy.profiles).map(([name, p]) => [
        name,
        { model: p.model, models: [...p.models].sort(), api_base: p.apiBase ?? null, api_key_env: p.apiKeyEnv ?? null, knobs: p.knobs },
      ]),
    ),
    endpoints: Object.fromEntries(
      sorted(policy.endpoints).map(([u, e]) => [u, { api_key_env: e.apiKeyEnv ?? null, models: e.models ? [...e.models].sort() : null }]),
    ),
  };
}

test("endpoints: the same normal form, or the same refusal with the same message", () => {
  URLS.forEach((url, i) => {
    let ts: { ok?: string; error?: string };
    try {
      ts = { ok: normalizeUrl(url) };
    } catch (err) {
      assert.ok(err instanceof UrlProblem, String(err));
      ts = { error: err.message };
    }
    assert.deepEqual(ts, py.urls[i], `normalize_url(${JSON.stringify(url)})`);
  });
  assert.ok(py.urls.filter((u) => u.ok).length >= 8 && py.urls.filter((u) => u.error).length >= 20, "both verdicts exercised");
});

test("the operator's policy: the same profiles, default and allow-list from the same variables; bad ones name source and field", () => {
  POLICIES.forEach((c, i) => {
    const theirs = py.policies[i]!;
    let ours: { ok?: unknown; error?: string };
    try {
      ours = { ok: summary(loadPolicy(c.env)) };
    } catch (err) {
      assert.ok(err instanceof LMConfigError, String(err));
      ours = { error: err.message };
    }
    const label = JSON.stringify(c.env).slice(0, 200);
    if (theirs.ok !== undefined) {
      assert.deepEqual(ours, theirs, label);
      return;
    }
    assert.ok(ours.error !== undefined, `${label}: the worker refuses it (${theirs.error}), the native engine accepted it`);
    for (const words of c.mentions ?? []) {
      assert.ok(theirs.error!.includes(words), `worker: ${theirs.error} lacks ${words}`);
      assert.ok(ours.error.replaceAll("`", "").includes(words), `native: ${ours.error} lacks ${words}`);
    }
  });
});

test("a request's lm: the same model, endpoint and key variable, or the same LMConfigError (field and message)", () => {
  REQUESTS.forEach((c, i) => {
    let ours: Record<string, unknown>;
    try {
      const r = resolveLm(loadPolicy(c.env), c.lm);
      ours = { model: r.model, api_base: r.apiBase ?? null, key_env: r.keyEnv ?? null, owner: r.owner, key_field: r.keyField, knobs: r.knobs };
    } catch (err) {
      assert.ok(err instanceof LMConfigError, String(err));
      ours = { field: err.field, message: err.message };
    }
    assert.deepEqual(ours, py.requests[i], JSON.stringify(c.lm ?? null));
  });
  assert.ok(py.requests.filter((r) => "field" in r).length >= 15, "refusals exercised");
});
