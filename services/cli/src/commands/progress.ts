/** Progress display for the CLI: a live bar on a TTY, plain lines otherwise (both on stderr). */
import type { JobProgress as ProgressEvent } from "@dspex/protocol";

function fmtEta(s: number | null): string {
  if (s === null) return "--";
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** One line: `[#######.......] 412/1000  41%  53.1/s  ETA 11s  score 69.90  failed 8`. */
export function formatProgress(e: ProgressEvent, width = 28): string {
  const done = e.done ?? 0;
  const frac = e.total ? done / e.total : 0;
  const filled = Math.round(frac * width);
  const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const score = e.score === null || e.score === undefined ? "—" : e.score.toFixed(2);
  const waiting = e.waiting ? `  waiting for the bus: ${e.waiting}` : "";
  return `${bar} ${done}/${e.total ?? "?"} ${pct}  ${(e.rate ?? 0).toFixed(1)}/s  ETA ${fmtEta(e.eta_s ?? null)}  score ${score}  failed ${e.failed ?? 0}${waiting}`;
}

export class ProgressDisplay {
  private lastLine = 0;
  private lastDone = -1;
  private drawn = false;
  /** A terminal line was printed (the final state can arrive twice: as an event and from the record). */
  private ended = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly tty = Boolean(process.stderr.isTTY),
    private readonly plainEveryMs = 2_000,
  ) {}

  update(e: ProgressEvent): void {
    const terminal = e.status !== "running" && e.status !== "queued";
    if (this.ended) return;
    if (terminal) this.ended = true;
    if (this.tty) {
      const cols = this.stream.columns ?? 100;
      this.stream.write(`\r\x1b[2K${formatProgress(e).slice(0, cols - 1)}`);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    if ((now - this.lastLine >= this.plainEveryMs && e.done !== this.lastDone) || terminal) {
      this.lastLine = now;
      this.lastDone = e.done ?? 0;
      this.stream.write(`${e.job} ${e.status}: ${formatProgress(e, 20)}\n`);
    }
  }

  end(): void {
    if (this.tty && this.drawn) this.stream.write("\n");
    this.drawn = false;
  }
}
