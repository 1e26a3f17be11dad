// Calling users' packaged programs through the real fleet: `client.program(name).call(...)` learns the program
// from the workers' advertisements, sends op `program` to its pool, and checks inputs before publish and outputs
// after the reply. The test package (test/programs, installed into .venv by scripts/setup.sh) serves `qa` and
// `summarize` by entry points; DSPEX_PROGRAMS adds programs that raise, answer the wrong fields, or cannot load.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { DeadlineExceeded, ProgramError, UnknownProgram, ValidationError } from "@dspex/protocol";
import { newToken, startRouter } from "@dspex/router";
import { PipelineStepError, callModule, programCaller, runPipeline, type PipelineContext } from "@dspex/pipeline";
import { startHarness, type Harness } from "../integration/harness.js";

const ROOT = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

describe("program packages: calling", { timeout: 180_000 }, () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({
      fleet: {
        workerEnv: {
          DSPEX_PROGRAMS: "dspex_test_programs.broken:Raises,dspex_test_programs.broken:WrongOutputs,dspex_test_programs.broken:Hangs,dspex_test_programs.broken:BadPool,dspex_test_programs.typed:Annotated",
          DSPEX_PROGRAM_OPTIONS: JSON.stringify({ Annotated: { prefix: "Short:" } }),
        },
      },
    });
  });
  after(async () => {
    await h?.close();
  });

  test("a multi-predictor program runs on a worker: both predictors call the LM, the outputs have the advertised types", async () => {
    const before = h.lmDouble.requests().length;
    const qa = h.client.program<{ question: string }, { answer: string; confidence: number }>("qa");
    const advert = await qa.describe();
    assert.deepEqual(advert.predictors, ["draft", "refine"]);
    const out = await qa.call({ question: "What is the capital of France?" });
    assert.equal(typeof out.outputs.answer, "string");
    assert.equal(out.outputs.answer, out.outputs.answer.trim(), "forward's post-processing ran");
    assert.equal(typeof out.outputs.confidence, "number");
    assert.deepEqual(Object.keys(out.outputs).sort(), ["answer", "confidence"]);
    assert.equal(out.worker, h.fleet.workers[0]!.id);
    const calls = h.lmDouble.requests().slice(before);
    assert.equal(calls.length, 2, "one LM call per predictor");
    assert.ok(out.usage, "usage is reported");
  });

  test("a single-predictor ChainOfThought program, on the direct lane and in a session", async () => {
    const summarize = h.client.program<{ text: string; max_words: number }, { reasoning: string; summary: string; keywords: string[] }>("summarize");
    const direct = await summarize.call({ text: "DSPy programs run on a fleet of workers.", max_words: 5 }, { lane: "direct" });
    assert.equal(typeof direct.outputs.summary, "string");
    assert.ok(Array.isArray(direct.outputs.keywords));
    const inSession = await summarize.call({ text: "Sessions stick to a worker.", max_words: 3 }, { session: "program-session-1" });
    assert.equal(typeof inSession.outputs.summary, "string");
  });

  test("a program streams its predictor's tokens, then the typed result", async () => {
    const stream = await h.client.program<{ text: string; max_words: number }, { summary: string }>("summarize").stream({ text: "Streams carry tokens.", max_words: 3 });
    const kinds = new Set<string>();
    for await (const event of stream) kinds.add(event.type);
    const result = await stream.result;
    assert.equal(typeof result.outputs.summary, "string");
    assert.ok(kinds.has("token"), `events: ${[...kinds].join(", ")}`);
  });

  test("bad inputs are refused before anything is published, naming the field", async () => {
    const before = h.lmDouble.requests().length;
    const qa = h.client.program("qa");
    await assert.rejects(qa.call({}), (err: unknown) => err instanceof ValidationError && err.field === "question");
    await assert.rejects(qa.call({ question: "q", extra: 1 }), (err: unknown) => err instanceof ValidationError && /extra/.test(err.message));
    const summarize = h.client.program("summarize");
    await assert.rejects(
      summarize.call({ text: "t", max_words: "many" }),
      (err: unknown) => err instanceof ValidationError && err.field === "max_words",
    );
    assert.equal(h.lmDouble.requests().length, before);
  });

  test("an unknown program lists the served ones; a declared one that failed to load says why", async () => {
    await assert.rejects(h.client.program("nope").call({}), (err: unknown) => {
      assert.ok(err instanceof UnknownProgram);
      const available = (err.details as { available: string[] }).available;
      assert.ok(available.includes("qa") && available.includes("summarize") && available.includes("Raises"), String(available));
      return true;
    });
    await assert.rejects(h.client.program("BadPool").call({ x: "1" }), (err: unknown) => err instanceof UnknownProgram && /pool 'tpu'/.test(err.message));
  });

  test("a program that raises is a ProgramError with the exception type and message, never the traceback", async () => {
    await assert.rejects(h.client.program("Raises").call({ x: "k1" }), (err: unknown) => {
      assert.ok(err instanceof ProgramError, String(err));
      assert.equal((err.details as { exception: string }).exception, "KeyError");
      assert.match(err.message, /no entry for k1/);
      assert.doesNotMatch(err.message, /Traceback|File "/);
      return true;
    });
  });

  test("a program that hangs past its deadline answers DeadlineExceeded at the deadline, and the worker keeps serving", async () => {
    const started = performance.now();
    await assert.rejects(h.client.program("Hangs").call({ x: "a" }, { timeoutMs: 1_500, retry: false }), (err: unknown) => err instanceof DeadlineExceeded);
    assert.ok(performance.now() - started < 5_000, "the caller is not held by the hung thread");
    const out = await h.client.program("qa").call({ question: "still there?" });
    assert.equal(typeof out.outputs.answer, "string");
  });

  test("a program that answers the wrong fields is a ValidationError naming the missing one", async () => {
    await assert.rejects(
      h.client.program("WrongOutputs").call({ x: "a" }),
      (err: unknown) => err instanceof ValidationError && err.field === "outputs.y",
    );
  });

  test("a caller built against another version of the program (other fields) is refused by the worker, naming the signature", async () => {
    const stale = { inputs: [{ name: "question", type: { kind: "str" } }, { name: "context", type: { kind: "str" } }], outputs: [{ name: "answer", type: { kind: "str" } }] } as const;
    await assert.rejects(
      h.client.send({ op: "program", signature: stale as never, inputs: { question: "q", context: "c" }, module: { name: "qa" } }),
      (err: unknown) => err instanceof ValidationError && err.field === "signature.inputs",
    );
  });

  test("module.name is checked against the contract before publish", async () => {
    await assert.rejects(
      h.client.send({ op: "program", signature: "x -> y", inputs: { x: "1" }, module: { name: "no spaces allowed" } }),
      (err: unknown) => err instanceof ValidationError && /name/.test(String(err.field ?? err.message)),
    );
    await assert.rejects(
      h.client.send({ op: "program", signature: "x -> y", inputs: { x: "1" } }),
      (err: unknown) => err instanceof ValidationError && /module/.test(String(err.field ?? err.message)),
    );
  });

  test("a program typed by forward's annotations, built with the deployment's constructor options, returns a dict", async () => {
    const annotated = h.client.program<{ question: string; max_words: number }, { answer: string; words: number }>("Annotated");
    const advert = await annotated.describe();
    assert.deepEqual(advert.outputs, [{ name: "answer", type: { kind: "str" } }, { name: "words", type: { kind: "int" } }]);
    const out = await annotated.call({ question: "What is NATS?", max_words: 3 });
    assert.ok(out.outputs.answer.startsWith("Short: "), out.outputs.answer);
    assert.equal(typeof out.outputs.words, "number");
    await assert.rejects(annotated.call({ question: "x" } as never), (e: unknown) => (e as { field?: string }).field === "max_words");
  });

  test("dspex call runs a program against a deployment and prints its typed outputs", async () => {
    const { stdout } = await run(
      process.execPath,
      ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), "call", "summarize", "-i", "text=The fleet runs DSPy.", "-i", "max_words=4", "--json"],
      { env: { ...process.env, NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.client, DSPEX_LM: h.lm.model }, cwd: ROOT, timeout: 60_000 },
    );
    const result = JSON.parse(stdout) as { outputs: { summary: unknown; keywords: unknown }; worker: string };
    assert.equal(typeof result.outputs.summary, "string");
    assert.ok(Array.isArray(result.outputs.keywords));
    assert.equal(result.worker, h.fleet.workers[0]!.id);
  });

  test("dspex codegen from the fleet writes the same types as from the Python environment", async () => {
    const codegen = async (args: string[], env: Record<string, string>) => {
      const { stdout } = await run(process.execPath, ["--conditions=development", "--import", "tsx", join(ROOT, "services/cli/src/cli.ts"), "codegen", ...args], {
        env: { ...process.env, ...env },
        cwd: ROOT,
        timeout: 60_000,
      });
      return stdout.split("\n").slice(1).join("\n"); // the first line names the source
    };
    const fleet = await codegen(["--program", "qa", "summarize"], { NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.client! });
    const offline = await codegen(["--offline", "--program", "qa", "summarize"], {});
    assert.match(fleet, /export function qa\(client: Client\): PackagedProgram<QaInputs, QaOutputs>/);
    assert.equal(fleet, offline);
    await assert.rejects(codegen(["--program", "nope"], { NATS_URL: h.fleet.natsUrl, NATS_CREDS: h.fleet.creds.client! }), /UnknownProgram: program: nope not found/);
  });

  test("the HTTP API (REST and GraphQL) lists the served programs and calls one: 200, 400 naming the field, 404 for an unknown program, 401 without a token", async () => {
    const caller = newToken("programs-caller", ["predict"]);
    const router = await startRouter({ port: 0, host: "127.0.0.1", tokens: [caller.entry], client: { servers: h.fleet.natsUrl, creds: h.fleet.creds.client, lm: h.lm } });
    try {
      const base = `http://127.0.0.1:${router.port}`;
      const auth = { authorization: `Bearer ${caller.token}` };
      const call = async (name: string, body: unknown, headers: Record<string, string> = auth) => {
        const res = await fetch(`${base}/v1/packaged-programs/${name}/call`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers } });
        return { status: res.status, body: (await res.json()) as Record<string, any> };
      };
      const list = await fetch(`${base}/v1/packaged-programs`, { headers: auth });
      assert.equal(list.status, 200);
      const listed = (await list.json()) as { programs: Array<{ name: string; inputs: unknown }>; failures: Array<{ name: string }> };
      assert.deepEqual(listed.programs.find((p) => p.name === "qa")?.inputs, [{ name: "question", type: { kind: "str" } }]);
      assert.ok(listed.failures.some((f) => f.name === "BadPool"));

      const ok = await call("qa", { inputs: { question: "What is 2+2?" } });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(typeof ok.body.outputs.answer, "string");
      assert.equal(typeof ok.body.outputs.confidence, "number");

      const missing = await call("qa", { inputs: {} });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.error.field, "question");
      const extra = await call("qa", { inputs: { question: "q" }, pool: "gpu" });
      assert.equal(extra.status, 400);
      assert.match(String(extra.body.error.field), /pool/);
      const unknown = await call("nope", { inputs: {} });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.type, "UnknownProgram");
      assert.ok((unknown.body.error.details.available as string[]).includes("qa"));
      assert.equal((await call("qa", { inputs: { question: "q" } }, {})).status, 401);

      const graph = await fetch(`${base}/v1/packaged-programs/qa/graph`, { headers: auth });
      assert.equal(graph.status, 200);
      const g = (await graph.json()) as { graph: { children: Array<{ name: string; signature?: string }> }; mermaid: string };
      assert.deepEqual(g.graph.children.map((c) => c.name), ["draft", "refine"]);
      assert.match(g.mermaid, /^flowchart TD/);

      // the same resource in GraphQL
      const gql = async (query: string) => {
        const res = await fetch(`${base}/graphql`, { method: "POST", body: JSON.stringify({ query }), headers: { "content-type": "application/json", ...auth } });
        assert.equal(res.status, 200);
        return (await res.json()) as { data: Record<string, any> | null; errors?: Array<{ message: string; extensions: Record<string, unknown> }> };
      };
      const served = await gql("{ packagedPrograms { programs { name version pool inputs predictors } failures { name error } } }");
      assert.deepEqual(served.data!.packagedPrograms.programs.find((p: { name: string }) => p.name === "qa").inputs, [{ name: "question", type: { kind: "str" } }]);
      assert.ok(served.data!.packagedPrograms.failures.some((f: { name: string }) => f.name === "BadPool"));
      const answered = await gql('mutation { callPackagedProgram(name: "qa", input: {inputs: {question: "What is 2+2?"}}) { outputs worker } }');
      assert.equal(typeof answered.data!.callPackagedProgram.outputs.answer, "string", JSON.stringify(answered));
      assert.equal(answered.data!.callPackagedProgram.worker, h.fleet.workers[0]!.id);
      const bad = await gql('mutation { callPackagedProgram(name: "qa", input: {inputs: {}}) { outputs } }');
      assert.deepEqual([bad.errors![0]!.extensions.type, bad.errors![0]!.extensions.field], ["ValidationError", "question"]);
      const nope = await gql('mutation { callPackagedProgram(name: "nope", input: {inputs: {}}) { outputs } }');
      assert.equal(nope.errors![0]!.extensions.type, "UnknownProgram");
    } finally {
      await router.stop();
    }
  });

  test("a pipeline step runs a packaged program: its inputs picked by the advertised names, its outputs merged", async () => {
    const ctx: PipelineContext = { callModule: (step, inputs, signal) => callModule(h.client, step, inputs, signal), programs: programCaller(h.client) };
    const result = await runPipeline(
      {
        steps: [
          { kind: "native", name: "ask", fn: "template", args: { template: "What is {topic}?", field: "question" } },
          { kind: "program", name: "answer", program: "qa" },
        ],
        output: ["answer", "confidence"],
      },
      { topic: "DSPy", unrelated: "not sent" },
      ctx,
    );
    assert.equal(typeof result.outputs.answer, "string");
    assert.equal(typeof result.outputs.confidence, "number");
    assert.equal(result.steps[1]?.worker, h.fleet.workers[0]!.id);
    assert.ok(result.usage.total_tokens > 0);
    await assert.rejects(
      runPipeline({ steps: [{ kind: "program", name: "missing", program: "nope" }] }, { x: 1 }, ctx),
      (err: unknown) => err instanceof PipelineStepError && err.type === "UnknownProgram",
    );
  });
});
