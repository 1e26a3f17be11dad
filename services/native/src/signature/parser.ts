/**
 * Parser for DSPy's string signatures ("context: list[str], question: str -> answer: str"), matching what
 * `dspy.Signature(text)` (dspy/signatures/signature.py, `_parse_signature` / `_parse_type_node`) accepts, within
 * the types the wire format can carry. Anything DSPy rejects is rejected here too, with the position of the
 * problem. A few things DSPy silently mangles are rejected as well (see `parseSignature`).
 *
 * Longer than 500 lines on purpose: it is one recursive-descent parser over one grammar (fields, types and
 * their Python spellings, with DSPy's error positions); split into files, each part would need the others.
 */

import { SignatureError } from "@dspex/protocol";
import { signatureError } from "./errors.js";
import { LruCache } from "./lru.js";
import { closest, fieldNameProblem, PYTHON_KEYWORDS } from "./names.js";
import { type Token, TokenCursor, TokenError, tokenize } from "./pytokens.js";
import { checkType } from "./wire.js";
import {
  type Field,
  formatType,
  type LiteralValue,
  scalar,
  type SignatureWire,
  type TypeExpr,
  frozen,
  typeEquals,
} from "./types.js";

// ---------------------------------------------------------------------------------------------------------
// A Python-expression AST for annotations (the subset that can appear in a parameter annotation).

type Node =
  | { k: "name"; id: string; start: number; end: number }
  | { k: "attr"; base: Node; attr: string; start: number; end: number }
  | {
      k: "const";
      value: string | number | boolean | null;
      kind: "str" | "int" | "float" | "bool" | "none" | "bytes" | "complex" | "fstring";
      start: number;
      end: number;
    }
  | { k: "subscript"; base: Node; args: Node[]; start: number; end: number; open: number }
  | { k: "or"; left: Node; right: Node; start: number; end: number; op: number }
  | { k: "tuple"; elts: Node[]; start: number; end: number }
  | { k: "call"; func: Node; start: number; end: number }
  | { k: "unary"; op: string; operand: Node; start: number; end: number }
  | { k: "display"; kind: "list" | "dict" | "set"; start: number; end: number };

class Fail extends Error {
  constructor(
    message: string,
    readonly position: number,
    readonly suggestion?: string,
  ) {
    super(message);
  }
}

const CLOSERS: Record<string, string> = { "[": "]", "(": ")", "{": "}" };

/** Python's limit on nesting (its tokenizer's MAXLEVEL): deeper input is a SyntaxError there, and here. */
const MAX_NESTING = 200;

/** Recursive-descent parser over a token list. */
class ExprParser extends TokenCursor {
  private depth = 0;

  /** Bounds the recursion: untrusted input cannot exhaust the stack (docs/security.md). */
  private nested<T>(parse: () => T): T {
    if (++this.depth > MAX_NESTING) throw new Fail("too many nested parentheses", this.peek().start);
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  expr(): Node {
    return this.nested(() => {
      let left = this.unary();
      while (this.isOp("|")) {
        const op = this.next().start;
        const right = this.unary();
        left = { k: "or", left, right, start: left.start, end: right.end, op };
      }
      return left;
    });
  }

  unary(): Node {
    const tok = this.peek();
    if (tok.t === "op" && (tok.value === "-" || tok.value === "+" || tok.value === "~")) {
      this.next();
      const operand = this.nested(() => this.unary());
      return { k: "unary", op: tok.value, operand, start: tok.start, end: operand.end };
    }
    return this.postfix();
  }

  postfix(): Node {
    let node = this.atom();
    for (;;) {
      if (this.isOp(".")) {
        this.next();
        const name = this.next();
        if (name.t !== "name") throw new Fail("expected a name after '.'", name.start);
        node = { k: "attr", base: node, attr: name.value, start: node.start, end: name.end };
      } else if (this.isOp("[")) {
        const open = this.next().start;
        if (this.isOp("]")) throw new Fail("empty brackets: expected a type argument inside '[]'", this.peek().start);
        const { elts, trailingComma } = this.list("[", open);
        node = {
          k: "subscript",
          base: node,
          args: elts.length === 1 && !trailingComma ? expandTuple(elts[0]!) : elts,
          start: node.start,
          end: this.tokens[this.i - 1]?.end ?? open,
          open,
        };
      } else if (this.isOp("(")) {
        const open = this.next().start;
        if (!this.isOp(")")) this.list("(", open);
        else this.next();
        node = { k: "call", func: node, start: node.start, end: this.tokens[this.i - 1]?.end ?? open };
      } else {
        return node;
      }
    }
  }

  /** Comma-separated expressions up to the closer of `opener` (consumed). */
  list(opener: string, openPos: number): { elts: Node[]; trailingComma: boolean } {
    const closer = CLOSERS[opener]!;
    const elts: Node[] = [];
    let trailingComma = false;
    for (;;) {
      if (this.isOp(closer)) {
        this.next();
        return { elts, trailingComma };
      }
      const tok = this.peek();
      if (tok.t === "end") throw new Fail(`unclosed '${opener}'`, openPos);
      elts.push(this.expr());
      if (opener === "{" && this.isOp(":")) {
        this.next(); // a dict display's `key: value` (a default value); only the key is kept, nothing reads it
        this.expr();
      }
      trailingComma = false;
      const after = this.peek();
      if (after.t === "op" && after.value === ",") {
        this.next();
        trailingComma = true;
        if (elts.length > 0 && this.isOp(",")) throw new Fail("unexpected ','", this.peek().start);
        continue;
      }
      if (after.t === "op" && after.value === closer) continue;
      if (after.t === "end") throw new Fail(`unclosed '${opener}'`, openPos);
      if (after.t === "op" && (after.value === "]" || after.value === ")" || after.value === "}")) {
        throw new Fail(`'${after.value}' does not match '${opener}' opened at position ${openPos}`, after.start);
      }
      throw new Fail(`expected ',' or '${closer}', got ${describe(after)}`, after.start);
    }
  }

  atom(): Node {
    const tok = this.next();
    switch (tok.t) {
      case "name": {
        if (tok.value === "True" || tok.value === "False") {
          return { k: "const", value: tok.value === "True", kind: "bool", start: tok.start, end: tok.end };
        }
        if (tok.value === "None") return { k: "const", value: null, kind: "none", start: tok.start, end: tok.end };
        if (PYTHON_KEYWORDS.has(tok.value)) throw new Fail(`unexpected keyword '${tok.value}'`, tok.start);
        return { k: "name", id: tok.value, start: tok.start, end: tok.end };
      }
      case "number":
        return {
          k: "const",
          value: tok.value,
          kind: tok.imaginary ? "complex" : tok.float ? "float" : "int",
          start: tok.start,
          end: tok.end,
        };
      case "string": {
        let value = tok.value;
        let bytes = tok.bytes;
        let fstring = tok.fstring;
        let end = tok.end;
        while (this.peek().t === "string") {
          const more = this.next() as Extract<Token, { t: "string" }>;
          if (more.bytes !== bytes) throw new Fail("cannot mix bytes and nonbytes literals", more.start);
          value += more.value;
          fstring ||= more.fstring;
          bytes = more.bytes;
          end = more.end;
        }
        return { k: "const", value, kind: fstring ? "fstring" : bytes ? "bytes" : "str", start: tok.start, end };
      }
      case "op": {
        if (tok.value === "(") {
          if (this.isOp(")")) {
            this.next();
            return { k: "tuple", elts: [], start: tok.start, end: tok.end + 1 };
          }
          const { elts, trailingComma } = this.list("(", tok.start);
          const end = this.tokens[this.i - 1]?.end ?? tok.end;
          if (elts.length === 1 && !trailingComma) return elts[0]!;
          return { k: "tuple", elts, start: tok.start, end };
        }
        if (tok.value === "[" || tok.value === "{") {
          if (!this.isOp(CLOSERS[tok.value]!)) this.list(tok.value, tok.start);
          else this.next();
          return {
            k: "display",
            kind: tok.value === "[" ? "list" : "dict",
            start: tok.start,
            end: this.tokens[this.i - 1]?.end ?? tok.end,
          };
        }
        if (tok.value === "]" || tok.value === ")" || tok.value === "}") {
          throw new Fail(`unmatched '${tok.value}'`, tok.start);
        }
        throw new Fail(`expected a type, got '${tok.value}'`, tok.start);
      }
      case "end":
        throw new Fail("expected a type", tok.start);
    }
  }
}

function expandTuple(node: Node): Node[] {
  return node.k === "tuple" ? node.elts : [node];
}

function describe(tok: Token): string {
  switch (tok.t) {
    case "end":
      return "the end of the side";
    case "name":
      return `'${tok.value}'`;
    case "op":
      return `'${tok.value}'`;
    case "number":
      return "a number";
    case "string":
      return "a string";
  }
}

// ---------------------------------------------------------------------------------------------------------
// Resolution of annotation nodes into wire type expressions, with DSPy's semantics.

type Generic = "list" | "List" | "dict" | "Dict" | "Optional" | "Union" | "Literal";

type Resolved = { r: "type"; type: TypeExpr } | { r: "generic"; g: Generic } | { r: "none" };

/** DSPy's own input types, spelled `dspy.X` in signature strings. */
const DSPY_TYPES: Record<string, TypeExpr> = {
  History: Object.freeze({ kind: "history" }),
  Image: Object.freeze({ kind: "image" }),
  Audio: Object.freeze({ kind: "audio" }),
};

const NAMES: Record<string, Resolved> = {
  str: { r: "type", type: scalar.str },
  int: { r: "type", type: scalar.int },
  float: { r: "type", type: scalar.float },
  bool: { r: "type", type: scalar.bool },
  list: { r: "generic", g: "list" },
  dict: { r: "generic", g: "dict" },
  NoneType: { r: "none" },
};

/** Names DSPy resolves through `typing.__dict__` (also reachable as `typing.X`). */
const TYPING_NAMES: Record<string, Resolved> = {
  Any: { r: "type", type: scalar.any },
  Text: { r: "type", type: scalar.str },
  List: { r: "generic", g: "List" },
  Dict: { r: "generic", g: "Dict" },
  Optional: { r: "generic", g: "Optional" },
  Union: { r: "generic", g: "Union" },
  Literal: { r: "generic", g: "Literal" },
};

/** Types DSPy accepts but the wire format cannot carry, with the closest supported form. */
const UNSUPPORTED: Record<string, string | undefined> = {
  tuple: "list[...]", Tuple: "list[...]", set: "list[...]", Set: "list[...]", frozenset: "list[...]",
  FrozenSet: "list[...]", Sequence: "list[...]", MutableSequence: "list[...]", Iterable: "list[...]",
  Iterator: "list[...]", Collection: "list[...]", AbstractSet: "list[...]", Deque: "list[...]",
  Mapping: "dict[...]", MutableMapping: "dict[...]", DefaultDict: "dict[...]", OrderedDict: "dict[...]",
  Counter: "dict[...]", bytes: "str", bytearray: "str", ByteString: "str", complex: "float",
  Annotated: undefined, Callable: undefined, Type: undefined, TypeVar: undefined, Generic: undefined,
  Protocol: undefined, TypedDict: undefined, NamedTuple: undefined, ClassVar: undefined, Final: undefined,
  NoReturn: undefined, Never: undefined, LiteralString: "str", AnyStr: "str", Hashable: undefined, Sized: undefined,
};

const TYPOS: Record<string, string> = {
  string: "str", String: "str", Str: "str", STR: "str", text: "str", chars: "str", char: "str",
  integer: "int", Integer: "int", Int: "int", INT: "int", long: "int", number: "float", Number: "float",
  double: "float", Double: "float", Float: "float", decimal: "float", Decimal: "float", real: "float",
  boolean: "bool", Boolean: "bool", Bool: "bool", BOOL: "bool", array: "list[...]", Array: "list[...]",
  object: "dict[str, Any]", Object: "dict[str, Any]", map: "dict[...]", Map: "dict[...]",
  dictionary: "dict[...]", Dictionary: "dict[...]", hash: "dict[...]", any: "Any", ANY: "Any",
  none: "None", null: "None", optional: "Optional[...]", literal: "Literal[...]", union: "Union[...]",
  enum: "Literal[...]", Enum: "Literal[...]",
};

const KNOWN_FOR_SUGGESTIONS = ["str", "int", "float", "bool", "list", "dict", "Any", "Optional", "Union", "Literal", "List", "Dict"];

const DICT_KEY_KINDS = new Set(["str", "int", "float", "bool", "literal", "any"]);

/**
 * Object types a signature string may name (`text -> person: Person`): set for the length of one
 * `parseSignature(text, instructions, types)` call (parsing is synchronous), never cached.
 */
let namedTypes: Readonly<Record<string, TypeExpr>> | undefined;

class Resolver {
  resolveName(node: Node): Resolved {
    if (node.k === "name") {
      const found = NAMES[node.id] ?? TYPING_NAMES[node.id];
      if (found) return found;
      const model = namedTypes !== undefined && Object.hasOwn(namedTypes, node.id) ? namedTypes[node.id] : undefined;
      if (model !== undefined) return { r: "type", type: model };
      throw this.unknown(node.id, node.start);
    }
    if (node.k === "attr") {
      if (node.base.k === "name" && node.base.id === "typing") {
        const found = TYPING_NAMES[node.attr];
        if (found) return found;
        if (node.attr in UNSUPPORTED) throw this.unknown(node.attr, node.start, `typing.${node.attr}`);
        throw new Fail(`unknown type 'typing.${node.attr}'`, node.start);
      }
      if (node.base.k === "name" && node.base.id === "dspy" && node.attr in DSPY_TYPES) return { r: "type", type: DSPY_TYPES[node.attr]! };
      if (node.base.k === "name" && node.base.id === "builtins") {
        const found = NAMES[node.attr];
        if (found && found.r !== "none") return found;
      }
      const dotted = dottedName(node);
      throw new Fail(
        `custom type '${dotted ?? "…"}' is not supported (the wire format carries str, int, float, bool, Any, list, dict, Optional, Union and Literal)`,
        node.start,
      );
    }
    if (node.k === "const") {
      if (node.kind === "none") return { r: "none" };
      if (node.kind === "str") {
        const inner = node.value as string;
        const known = NAMES[inner] ?? TYPING_NAMES[inner];
        throw new Fail("quoted (string) type annotations are not supported", node.start, known ? inner : undefined);
      }
      throw new Fail(`${constDescription(node)} is not a type`, node.start);
    }
    if (node.k === "subscript") return { r: "type", type: this.subscript(node) };
    if (node.k === "or") return { r: "type", type: this.union(this.flattenOr(node), node.op) };
    if (node.k === "tuple") throw new Fail("a tuple is not a type", node.start, "list[...]");
    if (node.k === "call") throw new Fail("calls are not supported in type annotations", node.start);
    if (node.k === "display") throw new Fail(`a ${node.kind} display is not a type`, node.start);
    throw new Fail(`unexpected '${node.op}'`, node.start);
  }

  unknown(id: string, position: number, shown = id): Fail {
    if (id in UNSUPPORTED) {
      const hint = UNSUPPORTED[id];
      const extra = id === "Annotated" ? "; use the signature builder to attach constraints" : "";
      return new Fail(`type '${shown}' is not supported by the DSPex wire format${extra}`, position, hint);
    }
    const typo = TYPOS[id] ?? closest(id, KNOWN_FOR_SUGGESTIONS);
    // a class name: most likely a model the caller meant to declare as an object type
    const declare = typo === undefined && /^[A-Z]/.test(id) ? " (declare it as an object type: `types: {" + id + ": t.object(...)}`)" : "";
    return new Fail(`unknown type '${shown}'${declare}`, position, typo);
  }

  /** A type in a type position. */
  type(node: Node): TypeExpr {
    const res = this.resolveName(node);
    if (res.r === "type") return res.type;
    if (res.r === "none") {
      throw new Fail("None is not a field type here", node.start, "Optional[T] or T | None");
    }
    switch (res.g) {
      case "list":
        return { kind: "list", items: scalar.any };
      case "dict":
        return { kind: "dict", keys: scalar.any, values: scalar.any };
      case "List":
      case "Dict": {
        const lower = res.g.toLowerCase();
        throw new Fail(`bare '${res.g}' is not a type DSPy accepts`, node.start, `${lower} or ${lower}[...]`);
      }
      default:
        throw new Fail(`'${res.g}' needs type arguments`, node.start, `${res.g}[...]`);
    }
  }

  member(node: Node): TypeExpr | "none" {
    const res = this.resolveName(node);
    return res.r === "none" ? "none" : this.type(node);
  }

  subscript(node: Extract<Node, { k: "subscript" }>): TypeExpr {
    const base = this.resolveName(node.base);
    if (base.r !== "generic") {
      const shown = base.r === "none" ? "None" : formatType(base.type);
      throw new Fail(`'${shown}' does not take type arguments`, node.open);
    }
    const args = node.args;
    switch (base.g) {
      case "list":
      case "List":
        if (args.length !== 1) {
          throw new Fail(`${base.g}[...] takes exactly one type argument, got ${args.length}`, node.open);
        }
        return { kind: "list", items: this.type(args[0]!) };
      case "dict":
      case "Dict": {
        if (args.length !== 2) {
          throw new Fail(`${base.g}[...] takes two type arguments (keys, values), got ${args.length}`, node.open);
        }
        const keys = this.type(args[0]!);
        if (!DICT_KEY_KINDS.has(keys.kind)) {
          throw new Fail(
            `dict keys must be str, int, float, bool, Any or a Literal, not ${formatType(keys)}`,
            args[0]!.start,
            "str",
          );
        }
        return { kind: "dict", keys, values: this.type(args[1]!) };
      }
      case "Optional":
        if (args.length !== 1) {
          throw new Fail(`Optional[...] takes exactly one type argument, got ${args.length}`, node.open);
        }
        return this.union([this.member(args[0]!), "none"], node.start);
      case "Union":
        return this.union(args.map((a) => this.member(a)), node.start);
      case "Literal":
        return { kind: "literal", values: this.literalValues(args) };
    }
  }

  literalValues(args: Node[]): LiteralValue[] {
    const values: LiteralValue[] = [];
    const push = (v: LiteralValue) => {
      if (!values.some((x) => x === v && typeof x === typeof v)) values.push(v);
    };
    for (const arg of args) {
      if (arg.k === "const") {
        switch (arg.kind) {
          case "str":
          case "int":
          case "float":
          case "bool":
            if (typeof arg.value === "number" && !Number.isFinite(arg.value)) {
              throw new Fail("Literal numbers must be finite", arg.start);
            }
            push(arg.value as LiteralValue);
            continue;
          case "none":
            throw new Fail("None inside Literal[...] is not supported", arg.start, "Optional[Literal[...]]");
          default:
            throw new Fail(`${constDescription(arg)} cannot be a Literal value`, arg.start);
        }
      }
      if (arg.k === "unary") {
        throw new Fail(
          "DSPy's signature parser does not accept signed numbers in Literal[...] (use the builder for negative values)",
          arg.start,
        );
      }
      if (arg.k === "subscript") {
        const inner = this.resolveName(arg);
        if (inner.r === "type" && inner.type.kind === "literal") {
          for (const v of inner.type.values) push(v);
          continue;
        }
      }
      throw new Fail("Literal values must be strings, numbers or booleans", arg.start);
    }
    if (values.length === 0) throw new Fail("Literal[...] needs at least one value", args[0]?.start ?? 0);
    return values;
  }

  flattenOr(node: Node): (TypeExpr | "none")[] {
    if (node.k === "or") return [...this.flattenOr(node.left), ...this.flattenOr(node.right)];
    return [this.member(node)];
  }

  /** Python's Union normalisation: flatten, drop duplicates, and map `X | None` to Optional[X]. */
  union(members: (TypeExpr | "none")[], position: number): TypeExpr {
    let hasNone = false;
    const unique: TypeExpr[] = [];
    for (const m of members) {
      let t = m;
      if (t === "none") {
        hasNone = true;
        continue;
      }
      while (t.kind === "optional") {
        hasNone = true;
        t = t.inner;
      }
      // a union inside a union is flattened into it, as Python does
      for (const inner of t.kind === "union" ? t.members : [t]) {
        if (!unique.some((u) => typeEquals(u, inner))) unique.push(inner);
      }
    }
    if (unique.length === 0) throw new Fail("a union of only None is not a field type", position);
    const only: TypeExpr = unique.length === 1 ? unique[0]! : { kind: "union", members: unique };
    // Union[A, B, None] travels as optional(union(A, B)): the same Python type (typing flattens it back)
    return hasNone ? { kind: "optional", inner: only } : only;
  }
}

function dottedName(node: Node): string | undefined {
  if (node.k === "name") return node.id;
  if (node.k === "attr") {
    const base = dottedName(node.base);
    return base === undefined ? undefined : `${base}.${node.attr}`;
  }
  return undefined;
}

function constDescription(node: Extract<Node, { k: "const" }>): string {
  switch (node.kind) {
    case "bytes":
      return "a bytes literal";
    case "fstring":
      return "an f-string";
    case "complex":
      return "a complex number";
    case "none":
      return "None";
    case "bool":
      return String(node.value ? "True" : "False");
    case "str":
      return "a string";
    default:
      return `the number ${String(node.value)}`;
  }
}

const resolver = new Resolver();

// ---------------------------------------------------------------------------------------------------------
// Signatures.

type Side = "input" | "output";

interface RawField {
  name: string;
  start: number;
  type: TypeExpr;
}

function parseSide(text: string, start: number, end: number, side: Side): RawField[] {
  let tokens: Token[];
  try {
    tokens = tokenize(text, start, end);
  } catch (err) {
    if (err instanceof TokenError) throw new Fail(err.message, err.position, err.suggestion);
    throw err;
  }
  const p = new ExprParser(tokens);
  const fields: RawField[] = [];
  let defaultSeen = false;
  for (;;) {
    const tok = p.next();
    if (tok.t === "end") break;
    if (tok.t !== "name") {
      if (tok.t === "op" && (tok.value === "*" || tok.value === "**" || tok.value === "/")) {
        throw new Fail(`'${tok.value}' parameters are not supported in a signature`, tok.start);
      }
      if (tok.t === "op" && tok.value === ",") {
        throw new Fail(fields.length === 0 ? `expected an ${side} field name before ','` : "unexpected ','", tok.start);
      }
      if (tok.t === "number") {
        throw new Fail(`expected an ${side} field name, got a number (names are Python identifiers)`, tok.start);
      }
      throw new Fail(`expected an ${side} field name, got ${describe(tok)}`, tok.start);
    }
    const name = tok.value;
    const nameProblem = fieldNameProblem(name);
    if (nameProblem) throw new FieldFail(name, new Fail(nameProblem.problem, tok.start, nameProblem.suggestion));
    let type: TypeExpr = scalar.str;
    if (p.isOp(":")) {
      const colon = p.next();
      const after = p.peek();
      if (after.t === "end" || (after.t === "op" && (after.value === "," || after.value === "="))) {
        throw new FieldFail(name, new Fail("missing type after ':'", colon.start + 1, "str"));
      }
      try {
        type = resolver.type(p.expr());
      } catch (err) {
        if (err instanceof Fail) throw new FieldFail(name, err);
        throw err;
      }
    }
    let after = p.next();
    if (after.t === "op" && after.value === "=") {
      // DSPy parses the side as Python parameters and ignores defaults (the field stays required): the default
      // must be an expression (here: the subset the annotation parser reads), and is then dropped
      const at = p.peek();
      if (at.t === "end" || (at.t === "op" && at.value === ",")) {
        throw new FieldFail(name, new Fail("missing default value after '='", at.start));
      }
      try {
        p.expr();
      } catch (err) {
        if (err instanceof Fail) throw new FieldFail(name, err);
        throw err;
      }
      defaultSeen = true;
      after = p.next();
    } else if (defaultSeen) {
      throw new FieldFail(name, new Fail("a field without a default follows one with a default (Python's parameter rule)", tok.start));
    }
    if (after.t === "end") {
      fields.push({ name, start: tok.start, type });
      break;
    }
    if (after.t === "op" && after.value === ",") {
      fields.push({ name, start: tok.start, type });
      continue;
    }
    if (after.t === "op" && after.value === "=") {
      throw new FieldFail(name, new Fail("unexpected '='", after.start));
    }
    if (after.t === "op" && (after.value === "]" || after.value === ")" || after.value === "}")) {
      throw new FieldFail(name, new Fail(`unmatched '${after.value}'`, after.start));
    }
    throw new FieldFail(name, new Fail(`expected ',' between fields, got ${describe(after)}`, after.start));
  }
  return fields;
}

class FieldFail extends Error {
  constructor(
    readonly field: string,
    readonly fail: Fail,
  ) {
    super(fail.message);
  }
}

const ARROW_TYPOS = ["=>", "→", "⟶", "—>", "–>", "- >", ">>"];

function signatureErrorAt(text: string, message: string, position: number, suggestion?: string, field?: string) {
  return signatureError(message, { position, source: text, ...(suggestion !== undefined ? { suggestion } : {}), ...(field !== undefined ? { field } : {}) });
}

function parseUncached(text: string): SignatureWire {
  const arrow = text.indexOf("->");
  if (arrow < 0) {
    for (const typo of ARROW_TYPOS) {
      const at = text.indexOf(typo);
      if (at >= 0) throw signatureErrorAt(text, "signature is missing '->' between inputs and outputs", at, "->");
    }
    throw signatureErrorAt(text, "signature is missing '->' between inputs and outputs", text.length);
  }
  const second = text.indexOf("->", arrow + 2);
  if (second >= 0) {
    throw signatureErrorAt(text, "signature must contain exactly one '->' (DSPy also counts '->' inside strings)", second);
  }
  const sides: RawField[][] = [];
  for (const [side, start, end] of [
    ["input", 0, arrow],
    ["output", arrow + 2, text.length],
  ] as const) {
    let fields: RawField[];
    try {
      fields = parseSide(text, start, end, side);
    } catch (err) {
      if (err instanceof FieldFail) {
        throw signatureErrorAt(text,
          `${side} field '${err.field}': ${err.fail.message}`,
          err.fail.position,
          err.fail.suggestion,
          err.field,
        );
      }
      if (err instanceof Fail) throw signatureErrorAt(text, err.message, err.position, err.suggestion);
      throw err;
    }
    // DSPy accepts a side without fields; DSPex takes input-less signatures (`-> answer`) but not output-less
    // ones, which would ask the LM for nothing (docs/dspy-surface.md)
    if (fields.length === 0 && side === "output") {
      throw signatureErrorAt(text, "signature has no output fields", Math.min(arrow + 2, text.length));
    }
    const seen = new Set<string>();
    for (const f of fields) {
      if (seen.has(f.name)) {
        throw signatureErrorAt(text, `duplicate ${side} field '${f.name}'`, f.start, undefined, f.name);
      }
      seen.add(f.name);
    }
    sides.push(fields);
  }
  const [inputs = [], outputs = []] = sides;
  const inputNames = new Set(inputs.map((f) => f.name));
  for (const f of outputs) {
    if (inputNames.has(f.name)) {
      throw signatureErrorAt(text, `field '${f.name}' is both an input and an output`, f.start, undefined, f.name);
    }
  }
  const toField = (f: RawField): Field => Object.freeze({ name: f.name, type: deepFreeze(f.type) });
  return Object.freeze({
    inputs: frozen(inputs.map(toField)),
    outputs: frozen(outputs.map(toField)),
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const cache = new LruCache<string, SignatureWire>(1024);

/**
 * Parses a DSPy signature string into the wire format, like `dspy.Signature(text, instructions)`.
 * Untyped fields are `str`. Results are cached (bounded LRU) and frozen. Throws SignatureError naming the
 * field, the problem and its 0-based position.
 *
 * Default values (`q: str = 3`) are read and dropped, as DSPy drops them (the field stays required); an empty
 * input side is accepted (`-> answer`). Stricter than DSPy where DSPy silently drops or mangles fields:
 * duplicate names within a side, `*`/`/` parameters, an empty output side, a bare `None` type, defaults beyond
 * the expressions the annotation parser reads (operators, lambdas); and types the wire format cannot carry
 * (tuple, set, bytes, custom classes, unions as dict keys).
 */
/** Longest signature text parsed: size is checked before any parsing (docs/security.md). */
export const MAX_SIGNATURE_CHARS = 64 * 1024;

export function parseSignature(text: string, instructions?: string, types?: Readonly<Record<string, TypeExpr>>): SignatureWire {
  if (types !== undefined && Object.keys(types).length > 0) return parseWithTypes(text, instructions, types);
  if (typeof text !== "string") throw new SignatureError("a signature string is required");
  if (text.length > MAX_SIGNATURE_CHARS) {
    throw new SignatureError(`the signature is ${text.length} characters long; at most ${MAX_SIGNATURE_CHARS} are accepted`, {
      field: "signature",
      details: { length: text.length, limit: MAX_SIGNATURE_CHARS },
    });
  }
  if (instructions !== undefined && typeof instructions !== "string") {
    throw new SignatureError("instructions must be a string");
  }
  let wire = cache.get(text);
  if (wire === undefined) {
    wire = parseUncached(text);
    cache.set(text, wire);
  }
  return instructions === undefined ? wire : { instructions, inputs: wire.inputs, outputs: wire.outputs };
}

/** A signature string naming object types: each checked, the parse not cached (the names are the caller's). */
function parseWithTypes(text: string, instructions: string | undefined, types: Readonly<Record<string, TypeExpr>>): SignatureWire {
  const checked: Record<string, TypeExpr> = {};
  for (const [name, type] of Object.entries(types)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || name in NAMES || name in TYPING_NAMES) {
      throw new SignatureError(`types.${name}: a declared type needs an identifier that is not a built-in type name`, { field: `types.${name}` });
    }
    checked[name] = checkType(type, `types.${name}`);
  }
  namedTypes = checked;
  try {
    const wire = parseUncached(text);
    return instructions === undefined ? wire : { instructions, inputs: wire.inputs, outputs: wire.outputs };
  } finally {
    namedTypes = undefined;
  }
}

/** Parses one type annotation (`"list[str]"`, `"Optional[Literal['a', 'b']]"`), naming declared object `types`. */
export function parseType(text: string, types?: Readonly<Record<string, TypeExpr>>): TypeExpr {
  if (types !== undefined) {
    namedTypes = types;
    try {
      return parseType(text);
    } finally {
      namedTypes = undefined;
    }
  }
  let tokens: Token[];
  try {
    tokens = tokenize(text);
    const p = new ExprParser(tokens);
    const node = p.expr();
    const rest = p.peek();
    if (rest.t !== "end") {
      if (rest.t === "op" && (rest.value === "]" || rest.value === ")" || rest.value === "}")) {
        throw new Fail(`unmatched '${rest.value}'`, rest.start);
      }
      throw new Fail(`unexpected ${describe(rest)} after the type`, rest.start);
    }
    return deepFreeze(resolver.type(node));
  } catch (err) {
    if (err instanceof TokenError || err instanceof Fail) {
      throw signatureErrorAt(text, `type '${text}': ${err.message}`, err.position, err.suggestion);
    }
    throw err;
  }
}

/** Statistics of the parse cache (for metrics and tests). */
export function signatureCacheStats(): { size: number; hits: number; misses: number; maxSize: number } {
  return { size: cache.size, hits: cache.hits, misses: cache.misses, maxSize: cache.maxSize };
}

/** Empties the parse cache (see also `clearSignatureCache`, which empties every signature cache). */
export function clearParseCache(): void {
  cache.clear();
}
