/**
 * The execution router's policy (services/client/src/engine/policy.ts): which engine a call asks for, from the
 * call's option, its program's, its operation's and the default — options over the environment — and a value that
 * is no engine refused with a ValidationError naming the variable or option.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "@dspex/protocol";
import { enginePolicy, requestedEngine } from "@dspex/client";

test("the most specific setting wins: call, program, operation, default", () => {
  const policy = enginePolicy(
    { ops: { predict: "hybrid" } },
    { DSPEX_ENGINE: "native", DSPEX_ENGINE_CHAIN_OF_THOUGHT: "python", DSPEX_ENGINE_PREDICT: "native", DSPEX_ENGINE_PROGRAMS: '{"p1": "python"}' },
  );
  assert.equal(policy.default, "native");
  assert.equal(requestedEngine(policy, "majority", undefined, undefined), "native", "the default");
  assert.equal(requestedEngine(policy, "chain_of_thought", undefined, undefined), "python", "the operation's (environment)");
  assert.equal(requestedEngine(policy, "predict", undefined, undefined), "hybrid", "an option over the environment");
  assert.equal(requestedEngine(policy, "predict", "p1", undefined), "python", "the program's");
  assert.equal(requestedEngine(policy, "predict", "p1", "native"), "native", "the call's");
  assert.equal(enginePolicy({}, {}).default, "python", "python when nothing is set");
  assert.equal(enginePolicy({ default: "hybrid" }, { DSPEX_ENGINE: "native" }).default, "hybrid");
});

test("a value that is no engine is a ValidationError naming where it came from", () => {
  const field = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof ValidationError, String(err));
      return err.field;
    }
    assert.fail("accepted");
  };
  assert.equal(field(() => enginePolicy({}, { DSPEX_ENGINE: "rust" })), "DSPEX_ENGINE");
  assert.equal(field(() => enginePolicy({}, { DSPEX_ENGINE_PREDICT: "Native" })), "DSPEX_ENGINE_PREDICT");
  assert.equal(field(() => enginePolicy({}, { DSPEX_ENGINE_PROGRAMS: "[1]" })), "DSPEX_ENGINE_PROGRAMS");
  assert.equal(field(() => enginePolicy({}, { DSPEX_ENGINE_PROGRAMS: '{"p": "fast"}' })), "DSPEX_ENGINE_PROGRAMS.p");
  assert.equal(field(() => enginePolicy({ default: "x" as never }, {})), "engine.default");
  assert.equal(field(() => enginePolicy({ ops: { predict: "x" as never } }, {})), "engine.ops.predict");
  assert.equal(field(() => requestedEngine(enginePolicy({}, {}), "predict", undefined, "turbo")), "engine");
});
