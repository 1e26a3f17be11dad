/**
 * skaffold stays the developer entry point: `skaffold render` (the real skaffold, built from its Go module by
 * scripts/install-skaffold.sh) renders each profile from skaffold.yaml, offline, to exactly the objects
 * `kustomize build` gives for that profile's overlay, with the four images named as the artifacts and
 * prefixed by --default-repo. No cluster and no network are used.
 * Run: bash scripts/install-skaffold.sh && node --conditions=development --import tsx --test test/deploy/skaffold.test.ts
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const VERSION = /^SKAFFOLD_VERSION=(\S+)$/m.exec(readFileSync(join(ROOT, "scripts", "install-skaffold.sh"), "utf8"))?.[1];
const SKAFFOLD = join(ROOT, ".dspex", "tools", `skaffold-${VERSION}`, "skaffold");
const BIN = join(ROOT, ".dspex", "bin");
const ARTIFACTS = ["dspex-router", "dspex-pipeline", "dspex-worker", "dspex-worker-gpu"];
const home = mkdtempSync(join(tmpdir(), "dspex-skaffold-home-"));
after(() => rmSync(home, { recursive: true, force: true }));

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: { template?: { spec?: { containers?: Array<{ image: string }> } } };
}

function run(cmd: string, args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    input,
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
    // skaffold runs `kustomize build` from PATH; HOME keeps its global config out of the user's
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}`, HOME: home, SKAFFOLD_UPDATE_CHECK: "false", SKAFFOLD_INTERACTIVE: "false" },
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function docs(yaml: string): Obj[] {
  const r = run(join(BIN, "gojq"), ["--yaml-input", "-c", "-s", "map(select(. != null))"], yaml);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Obj[];
}

const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const images = (objects: Obj[]): string[] =>
  objects.flatMap((o) => o.spec?.template?.spec?.containers?.map((c) => c.image) ?? []).filter((i) => i.includes("dspex-"));

describe(`skaffold ${VERSION} render`, () => {
  test("the skaffold built by scripts/install-skaffold.sh reads skaffold.yaml's schema", () => {
    assert.ok(existsSync(SKAFFOLD), `${SKAFFOLD} is missing: run bash scripts/install-skaffold.sh`);
    const version = run(SKAFFOLD, ["version"]);
    assert.equal(version.stdout.trim(), VERSION);
    const schema = /^apiVersion: (\S+)$/m.exec(readFileSync(join(ROOT, "skaffold.yaml"), "utf8"))?.[1];
    const known = run(SKAFFOLD, ["schema", "list"]);
    assert.ok(known.stdout.split("\n").includes(schema ?? "?"), `${schema} in skaffold schema list`);
    const diagnose = run(SKAFFOLD, ["diagnose", "--yaml-only", "--profile", "prod"]);
    assert.equal(diagnose.status, 0, diagnose.stderr);
  });

  for (const profile of [undefined, "dev", "prod"] as const) {
    test(`${profile ?? "no profile"}: renders the ${profile === "prod" ? "prod" : "dev"} overlay offline, images from --default-repo`, () => {
      const repo = "registry.example.test/dspex";
      const args = ["render", "--offline=true", "--digest-source=tag", `--default-repo=${repo}`, "--tag=t1", "--update-check=false", "--interactive=false"];
      if (profile) args.push("--profile", profile);
      const r = run(SKAFFOLD, args);
      assert.equal(r.status, 0, `skaffold ${args.join(" ")}:\n${r.stderr}`);
      const rendered = docs(r.stdout);
      const overlay = profile === "prod" ? "prod" : "dev";
      const kustomize = run(join(BIN, "kustomize"), ["build", join("deploy", "k8s", "overlays", overlay)]);
      assert.equal(kustomize.status, 0, kustomize.stderr);
      const expected = docs(kustomize.stdout);
      assert.deepEqual(rendered.map(key).sort(), expected.map(key).sort(), "the same objects as kustomize build");
      assert.deepEqual(
        [...new Set(images(rendered))].sort(),
        ARTIFACTS.map((a) => `${repo}/${a}:t1`).sort(),
        "each artifact, tagged, from the default repo",
      );
      assert.ok(images(expected).every((i) => ARTIFACTS.includes(i)), "the overlay names the artifacts");
      if (overlay === "prod") assert.ok(rendered.some((o) => o.kind === "NetworkPolicy"));
      else assert.ok(!rendered.some((o) => o.kind === "NetworkPolicy"));
    });
  }
});
