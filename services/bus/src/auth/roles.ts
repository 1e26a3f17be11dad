/**
 * The roles on the bus and what each may publish and subscribe to (docs/security.md). Every process connects
 * as one role; the permissions travel in its user JWT, so the server enforces them. A role's inbox prefix is
 * its own (`_INBOX_<role>`): replies to its requests land where no other role may subscribe, and only the
 * roles that answer requests from the stream (workers, the DLQ service) may publish into callers' inboxes —
 * which is what makes a forged reply impossible for anyone else.
 *
 * Subjects come from schemas/bus.json (through @dspex/protocol), so a renamed stream or subject cannot leave a
 * stale permission behind.
 */
import {
  BUCKETS,
  POOLS,
  STREAMS,
  deadLetterNoticeSubject,
  deadLetterSubject,
  deadLettersConsumer,
  directAllSubject,
  directSubject,
  evalDataSubject,
  evalResultSubject,
  executionSubject,
  jobCancelSubject,
  jobProgressSubject,
  jobsApiSubject,
  partitionConsumer,
  pipelineRunSubject,
  poolConsumer,
  registryConsumer,
  requestSubject,
  retrievalSubject,
  routerStatusSubject,
  streamSubject,
  toolSubject,
  workerStatusSubject,
  SERVICES,
  type Pool,
} from "@dspex/protocol";

export const ROLES = ["admin", "client", "pipeline", "gateway", "dlq", "monitor", "worker-general", "worker-optimizer", "worker-gpu"] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

export function workerRole(pool: Pool): Role {
  return `worker-${pool}`;
}

/** The inbox prefix of a role (replies to its requests, JetStream API answers, pull deliveries). */
export function inboxPrefix(role: Role): string {
  return `_INBOX_${role.replace("-", "_")}`;
}

export interface RolePermissions {
  pub: string[];
  sub: string[];
  /** May answer requests it received (publish once to their reply subject). */
  responses: boolean;
}

const API = "$JS.API";
const REQ = STREAMS.requests.name;
const any = (template: string) => template; // readability: a subject with wildcards

/** Reading a KV bucket: open it, get keys, list and watch them. */
function bucketRead(bucket: keyof typeof BUCKETS): string[] {
  const stream = `KV_${BUCKETS[bucket].name}`;
  return [
    `${API}.STREAM.INFO.${stream}`,
    `${API}.DIRECT.GET.${stream}`, // nats-py: the subject in the body
    `${API}.DIRECT.GET.${stream}.>`,
    `${API}.STREAM.MSG.GET.${stream}`,
    // keys() and watch() are ordered consumers: created, flow-controlled, deleted
    `${API}.CONSUMER.CREATE.${stream}`,
    `${API}.CONSUMER.CREATE.${stream}.>`,
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** Writing a KV bucket (put, create, update with a revision, delete, purge). */
function bucketWrite(bucket: keyof typeof BUCKETS): string[] {
  return [...bucketRead(bucket), `$KV.${BUCKETS[bucket].name}.>`];
}

/** Reading a stream with ordered consumers and direct gets (eval data and results). */
function streamRead(stream: string): string[] {
  return [
    `${API}.STREAM.INFO.${stream}`,
    `${API}.STREAM.MSG.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}.>`,
    `${API}.CONSUMER.CREATE.${stream}`,
    `${API}.CONSUMER.CREATE.${stream}.>`,
    // ordered pull consumers (nats.js) read their position and pull
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** Inboxes of the roles that call workers: where workers (and the DLQ service) publish replies. */
const CALLER_ROLES = ["admin", "client", "pipeline", "gateway"] as const;
const CALLER_INBOXES = CALLER_ROLES.map((r) => `${inboxPrefix(r)}.>`);

/** What every connection needs: its own inbox, and the JetStream account info clients ask for on connect. */
function base(role: Role): RolePermissions {
  return { pub: [`${API}.INFO`], sub: [`${inboxPrefix(role)}.>`], responses: false };
}

/** A caller of DSPy programs: requests, stored programs, sessions, optimize jobs, tools, streams, status. */
function callerPermissions(role: Role): RolePermissions {
  const b = base(role);
  return {
    pub: [
      ...b.pub,
      any(requestSubject("*", ">")), // every pool's requests (JetStream publishes)
      any(directSubject("*", ">")), // every pool's direct lane (core requests; the reply comes to its own inbox)
      `${API}.STREAM.INFO.${REQ}`,
      `${API}.CONSUMER.INFO.${REQ}.*`,
      `${API}.CONSUMER.LIST.${REQ}`,
      ...bucketWrite("programs"),
      ...bucketWrite("sessions"),
      ...bucketWrite("jobs"), // an optimize job's record is created by its caller
      // eval jobs: a large dataset is uploaded before submitting; results are read back (written only by the pipeline)
      any(evalDataSubject("*", "*")),
      ...streamRead(STREAMS.evalData.name),
      ...streamRead(STREAMS.evalResults.name),
      any(jobCancelSubject("*")),
      any(jobsApiSubject("*")),
      pipelineRunSubject(),
      `$SRV.PING.${SERVICES.worker}`,
      `$SRV.PING`,
      any(workerStatusSubject("*")),
      routerStatusSubject(),
      any(retrievalSubject("*", "*")), // a collection's search, upsert, delete, count (the retrieval service)
    ],
    sub: [
      ...b.sub,
      any(toolSubject(">")), // tools served to ReAct agents
      any(retrievalSubject("*", "*")), // serving a store's collection (`dspex retrieval serve`)
      any(streamSubject("*")), // token and status events of streamed requests
      any(jobProgressSubject("*")),
      routerStatusSubject(), // a router answers `dspex status`
    ],
    // answering tool calls, confirming replies (Dspex-Reply-Ack), answering `dspex status`
    responses: true,
  };
}

/** Consumer names of a pool: its sessionless consumer and one per partition (NATS wildcards are whole tokens). */
function poolConsumers(pool: Pool, partitions: number): string[] {
  return [poolConsumer(pool), ...Array.from({ length: partitions }, (_, n) => partitionConsumer(pool, n))];
}

function workerPermissions(pool: Pool, partitions: number): RolePermissions {
  const role = workerRole(pool);
  const b = base(role);
  const optimizer = pool === "optimizer";
  return {
    pub: [
      ...b.pub,
      `${API}.STREAM.INFO.${REQ}`,
      `${API}.CONSUMER.LIST.${REQ}`,
      `${API}.CONSUMER.NAMES.${REQ}`,
      `${API}.CONSUMER.INFO.${REQ}.*`, // read-only
      // pulling (and unpinning a partition it leaves) only from its own pool's consumers
      ...poolConsumers(pool, partitions).flatMap((c) => [`${API}.CONSUMER.MSG.NEXT.${REQ}.${c}`, `${API}.CONSUMER.UNPIN.${REQ}.${c}`]),
      `$JS.ACK.${REQ}.>`, // ack, nak, in progress, term
      ...CALLER_INBOXES, // replies go to the caller's inbox named in Dspex-Reply-To, and nowhere else
      any(streamSubject("*")),
      any(toolSubject(">")), // ReAct calls TypeScript tools (requests; answers come to its own inbox)
      any(retrievalSubject("*", "search")), // programs search collections (dspex_worker.retrieval); never write them
      any(deadLetterSubject(pool)), // copies of requests it terminates
      `${API}.STREAM.INFO.${STREAMS.deadLetters.name}`,
      ...bucketRead("programs"),
      ...bucketWrite("members"),
      ...bucketWrite("lmCache"), // the fleet-wide LM cache: read (a replica by watching) and written by workers only
      ...(optimizer ? [...bucketWrite("programs"), ...bucketWrite("jobs"), any(jobProgressSubject("*"))] : bucketRead("jobs")),
    ],
    sub: [
      ...b.sub,
      "$SRV.>", // the worker's NATS service (ping, info, stats)
      any(directAllSubject(pool)), // its own pool's direct lane (queue group), never another pool's
      any(workerStatusSubject("*")),
      ...(optimizer ? [any(jobCancelSubject("*"))] : []),
    ],
    responses: true,
  };
}

/** What a role may do; `partitions` are the pools' session partition counts (workers pull only their own pool's). */
export function rolePermissions(role: Role, partitions: Record<Pool, number>): RolePermissions {
  switch (role) {
    case "admin":
      // the operator's tools: `dspex bus apply`, `dspex dlq …`, tests' introspection
      return { pub: [">"], sub: [">"], responses: true };
    case "client":
      return callerPermissions(role);
    case "pipeline": {
      const c = callerPermissions(role);
      return {
        pub: [
          ...c.pub,
          any(evalResultSubject("*", "*")),
          `${API}.STREAM.PURGE.${STREAMS.evalData.name}`,
          `${API}.STREAM.PURGE.${STREAMS.evalResults.name}`,
          any(jobProgressSubject("*")),
        ],
        sub: [...c.sub, any(jobsApiSubject("*")), pipelineRunSubject(), any(jobCancelSubject("*"))],
        responses: true,
      };
    }
    case "gateway": {
      // the router with the program registry: a caller that also records executions (publishes them to
      // DSPEX_EXECUTIONS, reads them back through its durable consumer) and watches new ones; a plain client
      // cannot write execution history
      const c = callerPermissions(role);
      const ex = STREAMS.executions.name;
      return {
        pub: [
          ...c.pub,
          any(executionSubject("*")),
          `${API}.STREAM.INFO.${ex}`,
          `${API}.CONSUMER.INFO.${ex}.${registryConsumer()}`,
          `${API}.CONSUMER.MSG.NEXT.${ex}.${registryConsumer()}`,
          `$JS.ACK.${ex}.>`,
        ],
        sub: [...c.sub, any(executionSubject("*"))],
        responses: true,
      };
    }
    case "dlq": {
      const b = base(role);
      const adv = STREAMS.advisories.name;
      return {
        pub: [
          ...b.pub,
          `${API}.STREAM.INFO.${STREAMS.deadLetters.name}`,
          `${API}.STREAM.INFO.${adv}`,
          `${API}.CONSUMER.INFO.${adv}.${deadLettersConsumer()}`,
          `${API}.CONSUMER.MSG.NEXT.${adv}.${deadLettersConsumer()}`,
          `$JS.ACK.${adv}.>`,
          `${API}.STREAM.MSG.GET.${REQ}`,
          `${API}.STREAM.MSG.DELETE.${REQ}`,
          any(deadLetterSubject("*")),
          // a caller still waiting for a dead-lettered request is told at once, beside the reply subject (an
          // inbox plus the request id, or a bare inbox from other clients), never on it
          ...CALLER_ROLES.flatMap((r) => [deadLetterNoticeSubject(`${inboxPrefix(r)}.*`), deadLetterNoticeSubject(`${inboxPrefix(r)}.*.*`)]),
        ],
        sub: [...b.sub],
        responses: false,
      };
    }
    case "monitor": {
      // read-only: `dspex status`, dashboards
      const b = base(role);
      return {
        pub: [...b.pub, `${API}.STREAM.INFO.*`, `${API}.STREAM.LIST`, `${API}.STREAM.NAMES`, `${API}.CONSUMER.INFO.*.*`, `${API}.CONSUMER.LIST.*`, `$SRV.PING.${SERVICES.worker}`, `$SRV.PING`, any(workerStatusSubject("*")), routerStatusSubject()],
        sub: [...b.sub],
        responses: false,
      };
    }
    default:
      const pool = role.slice("worker-".length) as Pool;
      return workerPermissions(pool, partitions[pool]);
  }
}

/** Every pool's worker role. */
export const WORKER_ROLES: readonly Role[] = POOLS.map(workerRole);
