/**
 * The web console's page and style: one HTML shell and one stylesheet; everything on the page is drawn by
 * script.ts from the REST API and the GraphQL subscriptions, with the API token the user gives (kept in the
 * tab's sessionStorage only). No framework, no build step, ~20 KB.
 */
export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DSPex console</title>
<link rel="stylesheet" href="/console/console.css">
<link rel="icon" href="/console/favicon.svg">
<script type="module" src="/console/console.js"></script>
</head>
<body>
<header>
  <strong>DSPex</strong>
  <nav><a href="#/programs">Programs</a><a href="#/executions">Executions</a><a href="#/jobs">Jobs</a><a href="#/served">Served</a></nav>
  <span id="who"></span>
</header>
<main id="main"><p>Loading…</p></main>
</body>
</html>
`;

export const CONSOLE_CSS = `
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --accent: #2e5bff; --bad: #b42318; --ok: #067647; font-family: system-ui, sans-serif; color: var(--fg); }
body { margin: 0; background: #f8f9fb; }
header { display: flex; gap: 24px; align-items: center; padding: 10px 24px; background: #101828; color: #fff; }
header nav a { color: #d0d5dd; margin-right: 16px; text-decoration: none; }
header nav a:hover { color: #fff; }
#who { margin-left: auto; color: #98a2b3; font-size: 13px; }
main { padding: 20px 24px; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eef2ff; color: #3538cd; }
.state.deployed { background: #ecfdf3; color: var(--ok); } .state.deprecated { background: #f2f4f7; color: var(--muted); }
.state.training { background: #fffaeb; color: #b54708; } .state.optimized { background: #eff8ff; color: #175cd3; }
.error { color: var(--bad); background: #fef3f2; border: 1px solid #fecdca; padding: 8px 12px; margin: 8px 0; white-space: pre-wrap; }
.note { color: var(--muted); font-size: 13px; }
form.inline { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; background: #fff; border: 1px solid var(--line); padding: 10px; margin: 8px 0; }
form.inline label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
input, select, button { font: inherit; font-size: 14px; padding: 4px 8px; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 4px; padding: 6px 12px; cursor: pointer; }
button.secondary { background: #fff; color: var(--fg); border: 1px solid var(--line); }
progress { width: 320px; height: 14px; }
code, pre { font-family: ui-monospace, monospace; font-size: 12px; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px; overflow: auto; max-height: 240px; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.better { color: var(--ok); font-weight: 600; }
ul.tree, ul.tree ul { list-style: none; padding-left: 20px; border-left: 1px solid var(--line); margin: 4px 0; }
ul.tree { background: #fff; border: 1px solid var(--line); padding: 10px 10px 10px 20px; }
ul.tree li { margin: 4px 0; } ul.tree .predictor { font-weight: 600; color: var(--accent); }
ul.tree code.sig { display: block; color: var(--muted); margin-left: 12px; }
`;

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2e5bff"/><path d="M4 4h4a4 4 0 0 1 0 8H4z" fill="#fff"/></svg>`;
