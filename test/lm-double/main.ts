// CLI for the LM test double (a deterministic OpenAI-compatible server for tests):
//   node --import tsx test/lm-double/main.ts [--port 0] [--host 127.0.0.1] [--latency-ms 0] [--model test-model]...
// Prints one JSON line {"url", "port", "control"} once listening; exits 0 on SIGTERM/SIGINT.
import { parseArgs } from "node:util";

import { startLmDouble } from "./server.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    "latency-ms": { type: "string" },
    model: { type: "string", multiple: true },
  },
  strict: true,
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`lm-double: invalid --port ${values.port}\n`);
  process.exit(2);
}
const latency = values["latency-ms"] === undefined ? undefined : Number(values["latency-ms"]);

const double = await startLmDouble({
  host: values.host,
  port,
  ...(values.model && values.model.length > 0 ? { models: values.model } : {}),
  ...(latency !== undefined ? { initial: { latencyMs: latency } } : {}),
});
const controlUrl = double.url.replace(/\/v1$/, "/__control");
process.stdout.write(`${JSON.stringify({ url: double.url, port: double.port, control: controlUrl })}\n`);

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  double.close().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`lm-double: close failed after ${signal}: ${String(error)}\n`);
      process.exit(1);
    },
  );
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
