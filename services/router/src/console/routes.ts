/**
 * Serves the web console at /console/ (page.ts, script.ts): three static assets, no token needed to load them
 * (the page asks for one and sends it with every API call), under a Content-Security-Policy that allows only
 * this origin's scripts, styles and connections, and no framing.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { CONSOLE_CSS, CONSOLE_HTML, FAVICON_SVG } from "./page.js";
import { CONSOLE_JS } from "./script.js";

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(reply: FastifyReply, type: string, body: string) {
  return reply
    .header("content-type", `${type}; charset=utf-8`)
    .header("content-security-policy", CSP)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", "no-cache")
    .send(body);
}

export async function registerConsole(app: FastifyInstance): Promise<void> {
  const hide = { schema: { hide: true } };
  app.get("/console", hide, async (_req, reply) => reply.redirect("/console/"));
  app.get("/console/", hide, async (_req, reply) => send(reply, "text/html", CONSOLE_HTML));
  app.get("/console/console.js", hide, async (_req, reply) => send(reply, "text/javascript", CONSOLE_JS));
  app.get("/console/console.css", hide, async (_req, reply) => send(reply, "text/css", CONSOLE_CSS));
  app.get("/console/favicon.svg", hide, async (_req, reply) => send(reply, "image/svg+xml", FAVICON_SVG));
}
