"""A program's module tree (issue 19, "module graph"): every sub-module DSPy finds (`named_sub_modules()`), nested
as the attributes nest, each with its class and — for predictors — its signature, so a caller sees what a
program is made of (and what an optimizer tunes) without its code. `dspex programs graph` renders it as Mermaid."""

from __future__ import annotations

from typing import Any

import dspy

# Deeper trees are cut (a program that builds modules in a loop is still described, not walked forever).
MAX_NODES = 256


def _node(name: str, module: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "type": type(module).__name__, "children": []}
    if isinstance(module, dspy.Predict):
        sig = module.signature
        node["signature"] = f"{', '.join(sig.input_fields)} -> {', '.join(sig.output_fields)}"
        node["predictor"] = True
    return node


def module_graph(program: Any) -> dict[str, Any]:
    """The tree of `program`'s modules: `{name, type, children, signature?, predictor?}`; names are attribute
    paths from the program (`answer.predict`), the root's is empty."""
    root = _node("", program)
    nodes: dict[str, dict[str, Any]] = {"self": root}
    for path, module in program.named_sub_modules():
        if path == "self" or len(nodes) >= MAX_NODES:
            continue
        node = _node(path.removeprefix("self."), module)
        parent = path.rsplit(".", 1)[0]
        while parent not in nodes and "." in parent:  # a container (list, dict) between: attach to its owner
            parent = parent.rsplit(".", 1)[0]
        nodes.get(parent, root)["children"].append(node)
        nodes[path] = node
    return root
