/**
 * Image and audio values (`{kind: "image" | "audio"}`, dspy.Image / dspy.Audio on the worker), checked as the worker
 * checks them (workers/dspex_worker/signatures/media.py).
 */
import { FAIL, MAX_PROBLEMS, isPlainObject, typeProblem, type Check, type Ctx } from "./problems.js";

/** Largest decoded image or audio value (DSPEX_MEDIA_MAX_BYTES, default 1 MiB), as the worker checks it. */
export function mediaMaxBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = Number(env.DSPEX_MEDIA_MAX_BYTES);
  return Number.isInteger(raw) && raw > 0 ? raw : 1024 * 1024;
}

const DATA_URI = /^data:([a-z]+)\/([-\w.+]+);base64,([A-Za-z0-9+/]*={0,2})$/;

/**
 * dspy.Image / dspy.Audio inputs: an http(s) URL (images only; the provider fetches it), a base64 data URI of the
 * right media type, or `{data: bytes, mime}` / `{data: bytes, format}`; decoded, at most `mediaMaxBytes()`.
 */
export function compileMedia(kind: "image" | "audio"): Check {
  const name = kind === "image" ? "Image" : "Audio";
  const limit = mediaMaxBytes();
  const tooBig = (ctx: Ctx, path: string, bytes: number): typeof FAIL => {
    if (ctx.problems.length < MAX_PROBLEMS) {
      ctx.problems.push({ field: ctx.field, path, code: "constraint", expected: `<= ${limit} bytes`, got: `${bytes} bytes`, message: `${ctx.side} '${path}': ${bytes} bytes of ${kind}, over the ${limit}-byte limit` });
    }
    return FAIL;
  };
  return (v, path, ctx) => {
    if (typeof v === "string") {
      if (kind === "image" && /^https?:\/\/\S+$/i.test(v)) return v;
      const m = DATA_URI.exec(v);
      if (!m || m[1] !== kind || m[3]!.length % 4 !== 0) {
        return typeProblem(ctx, path, name, v, kind === "image" ? "not an http(s) URL or a base64 data:image/… URI" : "not a base64 data:audio/… URI");
      }
      const bytes = (m[3]!.length / 4) * 3 - (m[3]!.endsWith("==") ? 2 : m[3]!.endsWith("=") ? 1 : 0);
      return bytes > limit ? tooBig(ctx, path, bytes) : v;
    }
    const meta = kind === "image" ? "mime" : "format";
    if (isPlainObject(v) && v.data instanceof Uint8Array && typeof v[meta] === "string") {
      return v.data.length > limit ? tooBig(ctx, path, v.data.length) : { data: v.data, [meta]: v[meta] };
    }
    return typeProblem(ctx, path, name, v, `expected a URI or {data: bytes, ${meta}}`);
  };
}
