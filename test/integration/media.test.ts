/**
 * Image and audio inputs through a real worker and real DSPy: the LM double receives the content parts DSPy
 * builds (`image_url` with the data URI or URL, `input_audio` with base64 data and format); an undecodable data URI
 * and an oversized image are refused before anything is published, naming the field.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "@dspex/protocol";
import { startHarness, type Harness } from "./harness.js";

// the 8-byte PNG signature and a few bytes of a WAV header: content is not inspected, only carried
const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
const WAV = Uint8Array.from([0x52, 0x49, 0x46, 0x46, 4, 0, 0, 0, 0x57, 0x41, 0x56, 0x45]);
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

// a media limit below the pool's payload limit, here and on the worker (read when a signature is compiled)
const MEDIA_LIMIT = 256 * 1024;
process.env.DSPEX_MEDIA_MAX_BYTES = String(MEDIA_LIMIT);

type Part = { type: string; image_url?: { url: string }; input_audio?: { data: string; format: string } };

describe("image and audio inputs", { timeout: 120_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ fleet: { workerEnv: { DSPEX_MEDIA_MAX_BYTES: String(MEDIA_LIMIT) } } });
  });
  after(async () => {
    await h?.close();
  });

  async function parts(signature: string, inputs: Record<string, unknown>): Promise<Part[]> {
    const before = h.lmDouble.requests().length;
    await h.client.predict(signature, inputs);
    const body = h.lmDouble.requests().slice(before)[0]!.body as { messages: Array<{ content: string | Part[] }> };
    return body.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : []));
  }

  test("an image as a data URI, as bytes and as a URL reaches the provider as DSPy's image_url part", async () => {
    const uri = `data:image/png;base64,${b64(PNG)}`;
    const sig = "photo: dspy.Image, question -> answer";
    for (const photo of [uri, { data: PNG, mime: "image/png" }]) {
      const images = (await parts(sig, { photo, question: "What is it?" })).filter((p) => p.type === "image_url");
      assert.deepEqual(images.map((p) => p.image_url!.url), [uri]);
    }
    const url = "https://example.org/cat.png";
    assert.deepEqual((await parts(sig, { photo: url, question: "What is it?" })).filter((p) => p.type === "image_url").map((p) => p.image_url!.url), [url], "a URL is passed on, never fetched");
  });

  test("audio reaches the provider as DSPy's input_audio part", async () => {
    for (const clip of [`data:audio/wav;base64,${b64(WAV)}`, { data: WAV, format: "wav" }]) {
      const audio = (await parts("clip: dspy.Audio -> transcript", { clip })).filter((p) => p.type === "input_audio");
      assert.deepEqual(audio.map((p) => p.input_audio), [{ data: b64(WAV), format: "wav" }]);
    }
  });

  test("an undecodable data URI, the wrong media type and an oversized image are refused before publish, naming the field", async () => {
    const before = h.lmDouble.requests().length;
    const refused = (inputs: Record<string, unknown>, pattern: RegExp) =>
      assert.rejects(h.client.predict("photo: dspy.Image -> caption", inputs), (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err));
        assert.equal(err.field, "photo");
        assert.match(err.message, pattern);
        return true;
      });
    await refused({ photo: "data:image/png;base64,@@not base64@@" }, /data:image/);
    await refused({ photo: `data:audio/wav;base64,${b64(WAV)}` }, /data:image/);
    await refused({ photo: { data: new Uint8Array(MEDIA_LIMIT + 1), mime: "image/png" } }, new RegExp(`over the ${MEDIA_LIMIT}-byte limit`));
    assert.equal(h.lmDouble.requests().length, before, "nothing reached the LM");
  });
});
