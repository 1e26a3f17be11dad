/**
 * A packaged program's module tree, as its workers advertise it (workers/dspex_worker/programs/graph.py), and its
 * rendering as a Mermaid flowchart (what `dspex programs graph` prints and the API returns beside the JSON).
 */

export interface ModuleNode {
  /** The attribute path from the program (`answer.predict`); empty for the program itself. */
  name: string;
  /** The module's class (`ChainOfThought`, `Predict`, the program's own class). */
  type: string;
  /** A predictor's signature, `inputs -> outputs`. */
  signature?: string;
  predictor?: boolean;
  children: ModuleNode[];
}

/** Mermaid's quoted label: its own escapes for quotes and angle brackets, line breaks as <br/>. */
function label(text: string): string {
  return text.replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;");
}

/** A `flowchart TD` of the tree: one node per module, predictors with their signatures, edges from owner to part. */
export function mermaid(program: string, root: ModuleNode): string {
  const lines = ["flowchart TD"];
  let next = 0;
  const walk = (node: ModuleNode, parent: string | undefined): void => {
    const id = `n${next++}`;
    const title = node.name === "" ? `${program} (${node.type})` : `${node.name}: ${node.type}`;
    const text = node.signature ? `${label(title)}<br/>${label(node.signature)}` : label(title);
    lines.push(node.predictor ? `  ${id}[["${text}"]]` : `  ${id}["${text}"]`);
    if (parent !== undefined) lines.push(`  ${parent} --> ${id}`);
    for (const child of node.children) walk(child, id);
  };
  walk(root, undefined);
  return lines.join("\n");
}
