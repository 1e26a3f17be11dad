import { Packr } from "msgpackr";

/**
 * msgpack configured for cross-language output: plain maps (no record extension), the smallest map header
 * for the key count (as Python's msgpack writes), and maps decoded to plain objects. With these options
 * msgpackr and Python's `msgpack.packb(obj, use_bin_type=True)` produce identical bytes for the wire
 * envelopes (checked by the golden vectors in schemas/vectors).
 */
const packr = new Packr({
  useRecords: false,
  variableMapSize: true,
  mapsAsObjects: true,
  moreTypes: false,
  int64AsType: "number",
});

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
