/**
 * Endpoints in one spelling, as the worker compares them (workers/dspex_worker/lm/profiles.py `normalize_url`,
 * which reads a URL with Python's `urllib.parse.urlsplit`): http(s) only, scheme and host in lower case, the
 * default port and trailing slashes dropped; credentials, a query, a fragment, `.`/`..` segments, whitespace and
 * backslashes refused (each a different way of hiding another host). The same URL gets the same verdict and the
 * same message on both sides.
 */

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 };
const HOST = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?$/;
const IPV6 = /^[0-9a-f:.]+$/;
const SCHEME_CHARS = /^[A-Za-z0-9+.-]*$/;
const DOT_SEGMENTS = new Set([".", "..", "%2e", "%2e%2e", ".%2e", "%2e."]);

/** What is wrong with a URL (the message completes "<where>: …"). */
export class UrlProblem extends Error {}

interface Split {
  scheme: string;
  netloc: string;
  path: string;
  query: string;
  fragment: string;
}

/** `urllib.parse.urlsplit` for the URLs that reach it (no whitespace or control characters). */
function urlsplit(url: string): Split {
  let rest = url;
  let scheme = "";
  const colon = rest.indexOf(":");
  if (colon > 0 && /^[A-Za-z]/.test(rest) && SCHEME_CHARS.test(rest.slice(0, colon))) {
    scheme = rest.slice(0, colon).toLowerCase();
    rest = rest.slice(colon + 1);
  }
  let netloc = "";
  if (rest.startsWith("//")) {
    const ends = ["/", "?", "#"].map((c) => rest.indexOf(c, 2)).filter((i) => i >= 0);
    const end = ends.length > 0 ? Math.min(...ends) : rest.length;
    netloc = rest.slice(2, end);
    rest = rest.slice(end);
    if (netloc.includes("[") !== netloc.includes("]")) throw new UrlProblem("is not a URL (Invalid IPv6 URL)");
  }
  let fragment = "";
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let query = "";
  const mark = rest.indexOf("?");
  if (mark >= 0) {
    query = rest.slice(mark + 1);
    rest = rest.slice(0, mark);
  }
  return { scheme, netloc, path: rest, query, fragment };
}

/** `SplitResult.hostname` and `.port` (which raises for a port that is not a number in 0…65535). */
function hostAndPort(netloc: string): { host: string; port: number | undefined } {
  const hostinfo = netloc.slice(netloc.lastIndexOf("@") + 1);
  let host: string;
  let port: string;
  const open = hostinfo.indexOf("[");
  if (open >= 0) {
    const bracketed = hostinfo.slice(open + 1);
    const close = bracketed.indexOf("]");
    host = close >= 0 ? bracketed.slice(0, close) : bracketed;
    const after = close >= 0 ? bracketed.slice(close + 1) : "";
    const c = after.indexOf(":");
    port = c >= 0 ? after.slice(c + 1) : "";
  } else {
    const c = hostinfo.indexOf(":");
    host = c >= 0 ? hostinfo.slice(0, c) : hostinfo;
    port = c >= 0 ? hostinfo.slice(c + 1) : "";
  }
  if (port === "") return { host: host.toLowerCase(), port: undefined };
  if (!/^[0-9]+$/.test(port)) throw new UrlProblem(`is not a URL (Port could not be cast to integer value as '${port}')`);
  const value = Number(port);
  if (value > 65535) throw new UrlProblem("is not a URL (Port out of range 0-65535)");
  return { host: host.toLowerCase(), port: value };
}

/**
 * An http(s) base URL in one spelling, so that two spellings of one endpoint compare equal. Throws UrlProblem
 * saying what is wrong with anything else.
 */
export function normalizeUrl(url: string): string {
  for (const c of url) {
    if (/\s/u.test(c) || c.charCodeAt(0) < 0x20 || c === "\\") {
      throw new UrlProblem("must not contain whitespace, control characters or backslashes");
    }
  }
  const parts = urlsplit(url);
  const { host, port } = hostAndPort(parts.netloc);
  const defaultPort = DEFAULT_PORTS[parts.scheme];
  if (defaultPort === undefined) throw new UrlProblem("must be an http:// or https:// URL");
  if (parts.netloc.includes("@")) throw new UrlProblem("must not carry credentials");
  if (parts.query || parts.fragment || url.includes("?") || url.includes("#")) throw new UrlProblem("must not have a query or fragment");
  if (!(HOST.test(host) || (parts.netloc.includes("[") && IPV6.test(host)))) throw new UrlProblem("must name a host");
  if (parts.path.split("/").some((s) => DOT_SEGMENTS.has(s.toLowerCase()))) {
    throw new UrlProblem("must not have . or .. path segments");
  }
  let netloc = host.includes(":") ? `[${host}]` : host;
  if (port !== undefined && port !== defaultPort) netloc += `:${port}`;
  return `${parts.scheme}://${netloc}${parts.path.replace(/\/+$/, "")}`;
}
