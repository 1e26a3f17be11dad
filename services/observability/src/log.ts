/**
 * A tiny structured JSON logger: one JSON object per line on stderr, with `trace_id` / `span_id` of the active
 * span, in the same shape as the Python worker's log lines (`ts` in epoch seconds, `level`, `logger`, `msg`,
 * then the fields). The level comes from LOG_LEVEL (debug, info, warn/warning, error; default info).
 */
import { trace } from "@opentelemetry/api";

export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const PYTHON_NAMES: Record<LogLevel, string> = { debug: "debug", info: "info", warn: "warning", error: "error" };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger with these fields added to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Minimum level; defaults to $LOG_LEVEL, then info. */
  level?: LogLevel;
  /** Where lines go (default: process.stderr). */
  write?: (line: string) => void;
  fields?: LogFields;
}

export function parseLogLevel(value: string | undefined, fallback: LogLevel = "info"): LogLevel {
  const v = value?.trim().toLowerCase();
  if (v === "warning") return "warn";
  if (v === "critical" || v === "fatal") return "error";
  return v !== undefined && v in RANK ? (v as LogLevel) : fallback;
}

/** `trace_id` / `span_id` of the active span, or nothing outside a (valid) trace. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const ctx = trace.getActiveSpan()?.spanContext();
  if (!ctx || !trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}

function serialise(entry: Record<string, unknown>): string {
  try {
    return JSON.stringify(entry, (_key, value: unknown) => {
      if (typeof value === "bigint") return value.toString();
      if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
      return value;
    });
  } catch {
    return JSON.stringify({ ts: entry.ts, level: entry.level, logger: entry.logger, msg: String(entry.msg) });
  }
}

export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? parseLogLevel(process.env.LOG_LEVEL)];
  const write = options.write ?? ((line: string) => void process.stderr.write(line + "\n"));
  const base = options.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const entry: Record<string, unknown> = {
      ts: Math.round(Date.now()) / 1000,
      level: PYTHON_NAMES[level],
      logger: name,
      msg,
      ...traceFields(),
      ...base,
      ...fields,
    };
    write(serialise(entry));
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger(name, { ...options, fields: { ...base, ...fields } }),
  };
}
