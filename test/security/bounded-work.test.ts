/**
 * Bounded work on the worker (issue 15, item 4): a request without a deadline still has one (its pool's
 * default, DSPEX_<POOL>_TIMEOUT_MS, 2 s here), and a ProgramOfThought or RLM program that loops forever in DSPy's
 * Deno + Pyodide sandbox is stopped at its deadline: the caller gets DeadlineExceeded, the `deno` process is
 * killed, and the worker goes on answering. Real nats-server, a real worker running real dspy, the LM double.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import type { ReplyErr } from "@dspex/protocol";
import { startHarness, type Harness } from "../integration/harness.js";
import { handRequest, requestBody, until } from "../faults/helpers.js";

const DEFAULT_DEADLINE_MS = 2_000;

/** Pids of the processes descending from `root` whose command is deno (from /proc). */
function denoDescendants(root: number): number[] {
  const children = new Map<number, number[]>();
  const names = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ")"
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const pid = Number(entry);
      names.set(pid, comm);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // the process ended while we looked
    }
  }
  const found: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    if (names.get(pid) === "deno") found.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return found;
}

function errorOf(reply: unknown): ReplyErr["error"] {
  const r = reply as ReplyErr;
  assert.equal(r.ok, false, `expected an error reply, got ${JSON.stringify(reply)}`);
  return r.error;
}

describe("bounded work on the worker", { timeout: 240_000 }, () => {
  let h: Harness;
  let pid: number;

  before(async () => {
    h = await startHarness({ fleet: { workerEnv: { DSPEX_GENERAL_TIMEOUT_MS: String(DEFAULT_DEADLINE_MS) } } });
    pid = h.fleet.workers[0]!.process.pid!;
  });
  after(async () => {
    await h?.close();
  });

  test("a request without a Dspex-Deadline header gets its pool's default deadline", async (t) => {
    h.lmDouble.control.failNext("hang"); // the LM never answers: without a deadline this runs forever
    const started = Date.now();
    const r = await handRequest(h.client.nc, { body: requestBody({ lm: h.lm }), deadline: null, timeoutMs: 30_000 });
    const error = errorOf(await r.reply);
    const elapsed = Date.now() - started;
    assert.equal(error.type, "DeadlineExceeded", JSON.stringify(error));
    t.diagnostic(`DeadlineExceeded after ${elapsed} ms (default ${DEFAULT_DEADLINE_MS} ms)`);
    assert.ok(elapsed >= DEFAULT_DEADLINE_MS - 100 && elapsed < DEFAULT_DEADLINE_MS + 5_000, `answered after ${elapsed} ms`);
    assert.match(error.message, /pool's default/);
    h.lmDouble.control.reset();
    const ok = await h.client.predict("question -> answer", { question: "What is 1+2?" });
    assert.equal(ok.outputs.answer, "3", "and the worker carries on");
  });

  for (const op of ["program_of_thought", "rlm"] as const) {
    test(`a ${op} program looping forever answers DeadlineExceeded at its deadline and leaves no deno behind`, async (t) => {
      const question = `Loop forever (${op}).`;
      const loop = "```python\nwhile True:\n    pass\n```";
      h.lmDouble.control.setRules([
        { field: "question", match: question, outputs: { generated_code: loop } },
        { field: "variables_info", match: { contains: "Loop forever" }, outputs: { reasoning: "Loop.", code: loop } },
      ]);
      assert.deepEqual(denoDescendants(pid), [], "no sandbox before");
      const deadlineMs = 8_000;
      const started = Date.now();
      const r = await handRequest(h.client.nc, {
        body: requestBody({ op, inputs: { question }, lm: h.lm, module: { max_iters: 2 } }),
        deadline: started + deadlineMs,
        timeoutMs: 60_000,
      });
      await until(() => denoDescendants(pid).length > 0, deadlineMs, 20); // the sandbox runs the program
      const error = errorOf(await r.reply);
      const elapsed = Date.now() - started;
      assert.equal(error.type, "DeadlineExceeded", JSON.stringify(error));
      assert.ok(elapsed >= deadlineMs - 100 && elapsed < deadlineMs + 5_000, `answered after ${elapsed} ms`);
      const answered = Date.now();
      await until(() => denoDescendants(pid).length === 0, 5_000, 5);
      t.diagnostic(`DeadlineExceeded ${elapsed - deadlineMs} ms after the deadline; no deno ${Date.now() - answered} ms after the reply`);
      assert.ok(h.lmDouble.requests().some((x) => x.content?.includes("while True")), "the LM did hand over the loop");

      // the same worker answers the next request: its thread is free, the sandbox works again
      h.lmDouble.control.setRules([
        { field: "question", match: "Compute seventeen times twenty-three.", outputs: { generated_code: "```python\nresult = 17 * 23\n```" } },
        { field: "variables_info", match: { contains: "seventeen" }, outputs: { reasoning: "Multiply.", code: "```python\nSUBMIT(answer=str(17 * 23))\n```" } },
      ]);
      const inputs = { question: "Compute seventeen times twenty-three." };
      const next =
        op === "rlm"
          ? await h.client.modules.rlm("question -> answer", inputs, { max_iters: 2 })
          : await h.client.modules.programOfThought("question -> answer", inputs, { max_iters: 2 });
      assert.equal(typeof next.outputs.answer, "string");
      assert.equal(next.worker, h.fleet.workers[0]!.id);
      assert.equal(h.fleet.workers[0]!.process.pid, pid, "never restarted");
      await until(() => denoDescendants(pid).length === 0, 5_000);
      h.lmDouble.control.reset();
    });
  }
});
