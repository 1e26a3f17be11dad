/**
 * The pipeline service process: serves the jobs API (`dspex.jobs.api.*`) and `dspex.pipeline.run`, runs eval
 * jobs and resumes unfinished ones (its own after a restart, others' once their lease lapsed). Health on PORT.
 *
 *   NATS_URL=nats://… node services/pipeline/dist/server.js
 */
import { runService } from "@dspex/observability";
import { PipelineService } from "./service.js";

await runService("dspex-pipeline", async (logger) => {
  const service = await PipelineService.start({ logger });
  return {
    ready: () => service.ready(),
    info: { id: service.id, lease_ms: service.leaseMs },
    stop: () => service.close(),
  };
});
