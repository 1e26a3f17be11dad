/**
 * `dspex dlq list | show <seq> | replay <seq…> | replay --all` — the dead-lettered requests of a running
 * deployment (NATS_URL): stream DSPEX_DLQ, see docs/reliability.md.
 */
import { Option, type Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { DspexError, STREAMS } from "@dspex/protocol";
import { connectNats, forbiddenOr } from "@dspex/bus";
import {
  decodeDeadLetter,
  getDeadLetter,
  listDeadLetters,
  replayDeadLetter,
  type DlqEntry,
  type ReplayResult,
} from "@dspex/dlq";

async function withNats<T>(fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const servers = process.env.NATS_URL;
  if (!servers) throw new DspexError("dspex dlq needs NATS_URL (a running deployment, e.g. `dspex up`)", { field: "NATS_URL" });
  const nc = await connectNats({ servers, name: "dspex-dlq-cli" });
  try {
    return await fn(nc);
  } catch (err) {
    throw forbiddenOr(err, "dspex dlq", "admin");
  } finally {
    await nc.close();
  }
}

function seqArg(raw: string): number {
  const seq = Number(raw);
  if (!Number.isInteger(seq) || seq <= 0) throw new DspexError(`not a DLQ sequence number: ${JSON.stringify(raw)}`, { field: "seq" });
  return seq;
}

function summary(e: DlqEntry) {
  return {
    seq: e.seq,
    time: e.time.toISOString(),
    pool: e.pool,
    kind: e.kind,
    reason: e.reason,
    request_id: e.requestId,
    original_subject: e.originalSubject,
    original_seq: e.originalSeq,
    deliveries: e.deliveries,
    bytes: e.body.byteLength,
  };
}

function printReplay(r: ReplayResult): void {
  const outcome = r.reply
    ? r.reply.ok
      ? `ok from ${r.reply.worker}`
      : `error ${r.reply.error.type}: ${r.reply.error.message}`
    : (r.error ?? "published");
  process.stdout.write(`replayed ${r.seq} as ${r.id} on ${r.subject}: ${outcome}\n`);
}

export function registerDlqCommands(program: Command): void {
  const dlq = program.command("dlq").description(`dead-lettered requests (stream ${STREAMS.deadLetters.name}) of a running deployment (NATS_URL)`);

  dlq
    .command("list")
    .description("list dead letters, oldest first")
    .option("--pool <pool>", "only this pool")
    .addOption(new Option("--limit <n>", "at most this many (the newest)").argParser(Number).default(100))
    .option("--json", "print as JSON")
    .action((flags: { pool?: string; limit: number; json?: boolean }) =>
      withNats(async (nc) => {
        const entries = await listDeadLetters(nc, { pool: flags.pool, limit: flags.limit });
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(entries.map(summary), null, 2)}\n`);
          return;
        }
        if (entries.length === 0) {
          process.stdout.write("no dead letters\n");
          return;
        }
        for (const e of entries) {
          process.stdout.write(`${String(e.seq).padStart(6)}  ${e.time.toISOString()}  ${e.pool.padEnd(9)} ${e.kind.padEnd(14)} ${e.reason}\n`);
        }
      }),
    );

  dlq
    .command("show")
    .description("one dead letter: reason, headers and the decoded request")
    .argument("<seq>", "sequence in DSPEX_DLQ")
    .option("--json", "print as JSON")
    .action((raw: string, flags: { json?: boolean }) =>
      withNats(async (nc) => {
        const entry = await getDeadLetter(nc, seqArg(raw));
        if (!entry) throw new DspexError(`no dead letter with sequence ${raw}`, { field: "seq" });
        const decoded = decodeDeadLetter(entry);
        if (flags.json) {
          const out = { ...summary(entry), headers: entry.headers, body: decoded.value, body_error: decoded.error };
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        const s = summary(entry);
        const lines = [
          `seq:       ${s.seq}`,
          `time:      ${s.time}`,
          `pool:      ${s.pool}`,
          `kind:      ${s.kind}`,
          `reason:    ${s.reason}`,
          `request:   ${s.request_id ?? "-"}`,
          `original:  ${s.original_subject ?? "-"} #${s.original_seq ?? "-"}${s.deliveries ? `, ${s.deliveries} deliveries` : ""}`,
          "headers:",
          ...Object.entries(entry.headers).map(([k, v]) => `  ${k}: ${v}`),
          decoded.error !== undefined
            ? `body (${entry.body.byteLength} bytes, not decodable: ${decoded.error}): ${Buffer.from(entry.body.slice(0, 256)).toString("hex")}`
            : `body:\n${JSON.stringify(decoded.value, null, 2)}`,
        ];
        process.stdout.write(`${lines.join("\n")}\n`);
      }),
    );

  dlq
    .command("replay")
    .description("publish dead-lettered requests again to their original subject (new request id; the dead letter stays)")
    .argument("[seq...]", "sequences in DSPEX_DLQ")
    .option("--all", "every dead letter (of --pool)")
    .option("--pool <pool>", "with --all: only this pool")
    .option("--wait", "wait for each reply and print it")
    .addOption(new Option("--timeout <ms>", "deadline of the replayed request and wait for its reply").argParser(Number).default(60_000))
    .option("--json", "print as JSON")
    .action((raw: string[], flags: { all?: boolean; pool?: string; wait?: boolean; timeout: number; json?: boolean }) =>
      withNats(async (nc) => {
        let seqs = raw.map(seqArg);
        if (flags.all) {
          seqs = (await listDeadLetters(nc, { pool: flags.pool, limit: Number.MAX_SAFE_INTEGER }))
            .filter((e) => !e.bodyMissing)
            .map((e) => e.seq);
        }
        if (seqs.length === 0) throw new DspexError("name DLQ sequences to replay, or --all", { field: "seq" });
        const results = await Promise.all(
          seqs.map((seq) => replayDeadLetter(nc, seq, { waitMs: flags.wait ? flags.timeout : undefined, timeoutMs: flags.timeout })),
        );
        if (flags.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
        else results.forEach(printReplay);
      }),
    );
}
