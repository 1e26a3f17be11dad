/**
 * LM profiles owned by the operator (issue 15, item 2; docs/security.md): a caller cannot make a worker send
 * its provider key to a host of the caller's choosing. Real nats-server, real Python workers running real
 * dspy; the LM double is the workers' default profile, a second LM double is an allow-listed endpoint, and the
 * capture double stands for any other host: it records whatever reaches it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { LMConfigError, type LMConfig } from "@dspex/protocol";
import { startLmDouble, type LmDouble } from "../lm-double/server.js";
import { startHarness, type Harness } from "../integration/harness.js";
import { startCaptureDouble, type CaptureDouble } from "./capture-double.js";
import { PREDICT_STATE } from "../support/fixtures.js";

// Keys in the workers' environment: none of them may reach a host its profile or allow-list entry did not name.
const AMBIENT_KEY = "sk-ambient-openai-key-never-sent";
const PROFILE_KEY = "sk-profile-key-only-for-capture";
const ALLOWED_KEY = "sk-allowed-endpoint-key";
const KEYS = [AMBIENT_KEY, PROFILE_KEY, ALLOWED_KEY];
const NO_KEY = "Bearer dspex-no-key";

async function refused(call: Promise<unknown>, field: string): Promise<LMConfigError> {
  let caught: unknown;
  await assert.rejects(call, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof LMConfigError, `expected LMConfigError, got ${String(caught)}`);
  assert.equal(caught.field, field, caught.message);
  return caught;
}

describe("LM profiles: the operator decides where a key goes", { timeout: 180_000 }, () => {
  let h: Harness;
  let capture: CaptureDouble;
  let allowed: LmDouble;
  const predict = (lm: LMConfig, question = "What is 2+2?") => h.client.predict("question -> answer", { question }, { lm, timeoutMs: 30_000 });

  before(async () => {
    capture = await startCaptureDouble();
    allowed = await startLmDouble();
    h = await startHarness({
      fleet: {
        workerEnv: {
          OPENAI_API_KEY: AMBIENT_KEY,
          DSPEX_TEST_PROFILE_KEY: PROFILE_KEY,
          DSPEX_TEST_ALLOWED_KEY: ALLOWED_KEY,
          DSPEX_LM_PROFILES: JSON.stringify({
            profiles: { captured: { model: "openai/test-model", api_base: capture.url, api_key_env: "DSPEX_TEST_PROFILE_KEY" } },
          }),
          // written with a trailing slash: entries and requests are compared normalized
          DSPEX_LM_ALLOW_ENDPOINTS: JSON.stringify([{ url: `${allowed.url}/`, api_key_env: "DSPEX_TEST_ALLOWED_KEY" }]),
        },
      },
    });
  });
  after(async () => {
    await h?.close();
    await allowed?.close();
    await capture?.close();
  });

  test("a request-supplied api_base is refused with LMConfigError; the capture server receives nothing", async () => {
    const error = await refused(predict({ model: "openai/test-model", api_base: capture.url }), "lm.api_base");
    assert.match(error.message, /does not let a request choose the endpoint/);
    await refused(predict({ model: "openai/test-model", api_base: capture.url, api_key_env: "OPENAI_API_KEY" }), "lm.api_base");
    await refused(predict({ model: "openai/test-model", api_base: capture.url.replace("127.0.0.1", "LOCALHOST") }), "lm.api_base");
    assert.deepEqual(capture.requests(), [], "no request, so no Authorization header, reached the capture server");
  });

  test('api_key_env: "HOME" is refused, and the error says nothing of which variables exist', async () => {
    const home = await refused(predict({ ...h.lm, api_key_env: "HOME" }), "lm.api_key_env");
    const missing = await refused(predict({ ...h.lm, api_key_env: "DSPEX_NO_SUCH_VARIABLE" }), "lm.api_key_env");
    const other = await refused(predict({ ...h.lm, api_key_env: "DSPEX_TEST_PROFILE_KEY" }), "lm.api_key_env");
    // the same answer whether the variable exists, is another profile's key, or does not exist
    assert.equal(home.message.replace("HOME", "X"), missing.message.replace("DSPEX_NO_SUCH_VARIABLE", "X"));
    assert.equal(home.message.replace("HOME", "X"), other.message.replace("DSPEX_TEST_PROFILE_KEY", "X"));
    for (const e of [home, missing, other]) assert.doesNotMatch(e.message, /not set|is set|OPENAI_API_KEY|DSPEX_TEST_ALLOWED_KEY/);
  });

  test("the default profile: requests name a model, the double answers, and no key is sent to it", async () => {
    const seen = h.lmDouble.requests().length;
    const r = await predict(h.lm);
    assert.equal(r.outputs.answer, "4");
    assert.equal(r.lm, "openai/test-model");
    const sent = h.lmDouble.requests().slice(seen);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.authorization, NO_KEY, "a placeholder: litellm/openai did not fall back to OPENAI_API_KEY");
    await refused(predict({ model: "openai/gpt-4o" }), "lm.model");
    await refused(predict({ profile: "nosuch" }), "lm.profile");
  });

  test("an allow-listed endpoint works, and gets only the key its entry names", async () => {
    const plain = await predict({ model: "openai/test-model", api_base: allowed.url, temperature: 0.2 }, "What is 3+4?");
    assert.equal(plain.outputs.answer, "7");
    const keyed = await predict({ model: "openai/test-model", api_base: allowed.url, api_key_env: "DSPEX_TEST_ALLOWED_KEY" }, "What is 5+4?");
    assert.equal(keyed.outputs.answer, "9");
    assert.deepEqual(
      allowed.requests().map((r) => r.authorization),
      [NO_KEY, `Bearer ${ALLOWED_KEY}`],
      "no key unless the request names the entry's own, then that key",
    );
    await refused(predict({ model: "openai/test-model", api_base: allowed.url, api_key_env: "DSPEX_TEST_PROFILE_KEY" }), "lm.api_key_env");
    await refused(predict({ model: "openai/test-model", api_base: allowed.url, api_key_env: "OPENAI_API_KEY" }), "lm.api_key_env");
    await refused(predict({ model: "anthropic/claude-x", api_base: allowed.url }), "lm.model");
    assert.equal(allowed.requests().length, 2, "refused requests sent nothing");
  });

  test("a profile's key goes to its own endpoint only, and a request cannot move it", async () => {
    const r = await predict({ profile: "captured" });
    assert.equal(r.outputs.answer, "captured");
    const got = capture.requests();
    assert.equal(got.length, 1);
    assert.equal(got[0]!.path, "/v1/chat/completions");
    assert.equal(got[0]!.authorization, `Bearer ${PROFILE_KEY}`);
    const before = allowed.requests().length;
    await refused(predict({ profile: "captured", api_base: allowed.url }), "lm.api_base");
    await refused(predict({ profile: "captured", model: "openai/other-model" }), "lm.model");
    await refused(predict({ profile: "captured", api_key_env: "DSPEX_TEST_ALLOWED_KEY" }), "lm.api_key_env");
    assert.equal(allowed.requests().length, before);
    assert.equal(capture.requests().length, 1);
  });

  test("a stored program's learned state cannot redirect the LM (DSPy state keys other than demos are dropped)", async () => {
    const { definition } = await h.client.createProgram({
      signature: "question -> answer",
      module: "predict",
      state: {
        dspy_state: {
          ...PREDICT_STATE,
          lm: { model: "openai/test-model", api_base: capture.url, api_key: "x" },
          config: { api_base: capture.url },
        },
      },
    });
    const before = capture.requests().length;
    const seen = h.lmDouble.requests().length;
    const r = await h.client.execute(definition.id, { question: "What is 6+1?" }, { lm: h.lm, timeoutMs: 30_000 });
    assert.equal(r.outputs.answer, "7");
    assert.equal(capture.requests().length, before, "the state's config.api_base was not used");
    assert.equal(h.lmDouble.requests().length, seen + 1, "the profile's endpoint answered");
  });

  test("over all of it no key reached the default profile's endpoint or the allow-listed one uninvited", () => {
    for (const r of h.lmDouble.requests()) assert.equal(r.authorization, NO_KEY);
    for (const r of allowed.requests()) assert.ok(r.authorization === NO_KEY || r.authorization === `Bearer ${ALLOWED_KEY}`);
    for (const r of capture.requests()) assert.equal(r.authorization, `Bearer ${PROFILE_KEY}`);
    const everything = JSON.stringify([h.lmDouble.requests(), allowed.requests(), capture.requests()]);
    assert.ok(!everything.includes(AMBIENT_KEY), "the ambient OPENAI_API_KEY never left the worker");
    assert.equal(KEYS.length, 3);
  });
});
