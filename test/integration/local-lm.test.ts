/**
 * Real inference smoke test: the gpu pool hosts the local model (SmolLM2-135M-Instruct on llama.cpp,
 * docs/local-lm.md), started first by the fleet and made every worker's default LM, and a general worker runs a
 * real dspy.Predict against it through DSPy's normal OpenAI-compatible client path — the request names no LM.
 * The answers are a tiny model's, so this checks types, not correctness.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@dspex/client";
import { localLmInstalled, startFleet, type Fleet } from "@dspex/embedded";
import type { LMConfig } from "@dspex/protocol";

describe("the local model in the gpu pool", { timeout: 240_000, skip: !localLmInstalled() && "local model not installed (scripts/install-local-lm.sh)" }, () => {
  let fleet: Fleet;
  let client: Client;
  let lm: LMConfig;

  before(async () => {
    fleet = await startFleet({ workers: { general: 1, gpu: 1 }, lm: "local" });
    assert.ok(fleet.lm, "the gpu worker advertises the local model in its ready event");
    lm = fleet.lm.lm;
    client = await Client.connect({ servers: fleet.natsUrl, creds: fleet.creds.client }); // no LM: the workers' default is the local model
  });
  after(async () => {
    await client?.close();
    await fleet?.stop();
  });

  test("a real Predict through the fleet parses into the signature's types", async () => {
    const result = await client.predict<{ sentiment: string; stars: number; keywords: unknown[] }>(
      "review: str -> sentiment: Literal['positive', 'negative', 'neutral'], stars: int, keywords: list[str]",
      { review: "The battery lasts two days and the screen is gorgeous." },
      { timeoutMs: 180_000 },
    );
    assert.ok(["positive", "negative", "neutral"].includes(result.outputs.sentiment as string));
    assert.ok(Number.isInteger(result.outputs.stars), `stars ${String(result.outputs.stars)}`);
    assert.ok(Array.isArray(result.outputs.keywords) && result.outputs.keywords.every((k) => typeof k === "string"));
    assert.equal(result.lm, lm.model);
    assert.match(result.worker, /^general-/);
    assert.ok(result.usage.completion_tokens > 0, "the model generated tokens");
  });

  test("chain of thought on the local model returns reasoning and a typed answer", async () => {
    const result = await client.chainOfThought("question -> answer: str", { question: "What color is the sky?" }, { timeoutMs: 180_000 });
    assert.equal(typeof result.outputs.reasoning, "string");
    assert.equal(typeof result.outputs.answer, "string");
  });
});
