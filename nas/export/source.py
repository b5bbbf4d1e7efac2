"""One self-contained PyTorch file for one architecture, importing torch only.

The constructor is written from the module tree of the network that ``build_network`` makes
(so the ``state_dict`` keys are the same by construction); the op classes are copied from
``nas.ops`` (only those used); ``forward`` is unrolled for the architecture, one line per node.
A metaqnn network is a plain chain of torch layers: its ``body`` is written as one
``nn.Sequential`` with a comment naming each MetaQNN layer (and its output shape).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nas import ops
from nas.architecture import Architecture
from nas.errors import ExportError
from nas.export.artifacts import package_version
from nas.export.network import (
    Nb201Cell,
    Nb201Network,
    ResNetBlock,
    build_network,
    metaqnn_layers,
    network_options,
)
from nas.models.base import ClassifierHead
from nas.models.macro import MacroNetwork, _reduce_key
from nas.models.metaqnn import MetaQNNNetwork
from nas.models.micro import Cell as MicroCell
from nas.models.micro import MicroNetwork
from nas.spaces.base import SearchSpace
from nas.spaces.metaqnn import SM
from nas.spaces.nb201 import NB201_EDGES
from nas.training import forked_rng

__all__ = ["export_pytorch_source"]

INDENT = "    "

#: Classes whose source is copied into the file, in file order, with what they need.
_COPIED: dict[type, tuple[Callable[..., Any] | type, ...]] = {
    ops.ReLUConvBN: (ops.conv_layer, ops.batch_norm),
    ops.SepConv: (ops.conv_layer, ops.batch_norm),
    ops.Pool: (),
    ops.FactorizedReduce: (ops.conv_layer, ops.batch_norm),
    ops.Zero: (),
    ResNetBlock: (ops.ReLUConvBN, ops.conv_layer, ops.batch_norm),
    ClassifierHead: (),
}
_HELPERS: tuple[Callable[..., Any], ...] = (ops.conv_layer, ops.batch_norm)


def export_pytorch_source(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    options: Mapping[str, Any] | None = None,
    verify: bool = True,
) -> str:
    """Python source of ``ExportedNet`` (an ``nn.Module``) and ``build(weights=None)`` for
    ``arch``, whose ``state_dict`` keys equal those of ``build_network(...)``, so saved weights
    load with ``strict=True``. ``verify`` runs the source here and compares keys and outputs.
    """
    with forked_rng(0):
        model = build_network(space, arch, input_shape, num_classes, options).eval()
    writer = _Writer(model)
    written: dict[str, str] = {}  # attributes written by the space's writer, not generically
    if isinstance(model, MacroNetwork):
        extra, forward = [], _macro_forward(model, arch)
    elif isinstance(model, MicroNetwork):
        extra, forward = _micro_cells(model, arch), _MICRO_FORWARD
    elif isinstance(model, Nb201Network):
        extra, forward = _nb201_cell(space, arch), _NB201_FORWARD
    elif isinstance(model, MetaQNNNetwork):
        extra, forward = [], _METAQNN_FORWARD
        written["body"] = _metaqnn_body(writer, model, 2)
    else:  # pragma: no cover - build_network only builds the four above
        raise ExportError(f"no PyTorch source writer for {type(model).__name__}")
    body = "\n".join(
        f"{INDENT * 2}self.{name} = "
        + (written[name] if name in written else writer.expr(child, 2))
        for name, child in model.named_children()
    )
    source = _assemble(
        space=space,
        arch=arch,
        input_shape=tuple(int(v) for v in input_shape),
        num_classes=num_classes,
        options=network_options(space, options),
        copied=writer.copied_sources(),
        extra_classes=extra,
        init_body=body,
        forward=forward,
    )
    if verify:
        _verify(source, model, tuple(input_shape))
    return source


# --- module tree -> constructor expressions ---------------------------------------------------
class _Writer:
    """Writes each module as the expression that rebuilds it; records the classes it uses."""

    def __init__(self, model: nn.Module) -> None:
        self.dim = int(model.dim)  # type: ignore[arg-type]
        self.used: set[type] = set()
        self.channels: dict[int, int] = {}
        # Pooling ops do not store their channel count; a forward pass tells it.
        hooks = [
            m.register_forward_hook(self._record)
            for m in model.modules()
            if isinstance(m, ops.Pool)
        ]
        try:
            with torch.no_grad():
                model(torch.zeros(1, *model.input_shape))  # type: ignore[arg-type]
        finally:
            for hook in hooks:
                hook.remove()

    def _record(self, module: nn.Module, args: tuple[torch.Tensor, ...], _out: Any) -> None:
        self.channels[id(module)] = int(args[0].shape[1])

    def expr(self, m: nn.Module, level: int) -> str:
        kind = type(m)
        if kind in _COPIED:
            self.used.add(kind)
            return self._copied(m)
        if isinstance(m, MicroCell | Nb201Cell):
            return self._cell(m, level)
        if kind is nn.Sequential:
            return self._block("nn.Sequential(", [self.expr(c, level + 1) for c in m], ")", level)
        if kind is nn.ModuleList:
            return self._block("nn.ModuleList([", [self.expr(c, level + 1) for c in m], "])", level)
        if kind is nn.ModuleDict:
            items = [f"{json.dumps(k)}: {self.expr(c, level + 1)}" for k, c in m.items()]
            return self._block("nn.ModuleDict({", items, "})", level)
        return _torch_leaf(m)

    @staticmethod
    def _block(opening: str, items: list[str], closing: str, level: int) -> str:
        if not items:
            return opening + closing
        flat = opening + ", ".join(items) + closing
        if opening != "nn.ModuleList([" and "\n" not in flat and len(flat) + 4 * level <= 76:
            return flat
        pad = INDENT * (level + 1)
        return opening + "\n" + "".join(f"{pad}{i},\n" for i in items) + INDENT * level + closing

    def _cell(self, cell: nn.Module, level: int) -> str:
        """``NormalCell(pre0=..., pre1=..., edges=...)`` or ``Cell(edges=...)``."""
        if isinstance(cell, MicroCell):
            kind, names = (
                ("ReduceCell" if cell.reduction else "NormalCell"),
                ("pre0", "pre1", "edges"),
            )
        else:
            kind, names = "Cell", ("edges",)
        pad = INDENT * (level + 1)
        parts = [f"{pad}{n}={self.expr(getattr(cell, n), level + 1)},\n" for n in names]
        return f"{kind}(\n" + "".join(parts) + f"{INDENT * level})"

    def _copied(self, m: nn.Module) -> str:
        d = self.dim
        if isinstance(m, ops.ReLUConvBN):
            conv = m[1]
            k, stride = _one(conv.kernel_size), _one(conv.stride)
            return f"ReLUConvBN({conv.in_channels}, {conv.out_channels}, {k}, {stride}, {d})"
        if isinstance(m, ops.SepConv):
            depthwise, pointwise = m[1], m[2]
            return (
                f"SepConv({depthwise.in_channels}, {pointwise.out_channels}, "
                f"{_one(depthwise.kernel_size)}, {_one(depthwise.stride)}, {d})"
            )
        if isinstance(m, ops.Pool):
            kind = "max" if isinstance(m.pool, nn.MaxPool1d | nn.MaxPool2d) else "avg"
            c = self.channels[id(m)]
            k, stride = _one(m.pool.kernel_size), _one(m.pool.stride)
            return f'Pool("{kind}", {c}, {c}, {k}, {stride}, {d})'
        if isinstance(m, ops.FactorizedReduce):
            return f"FactorizedReduce({m.conv_a.in_channels}, {m.bn.num_features}, {d})"
        if isinstance(m, ops.Zero):
            return f"Zero({m.c_out}, {m.stride}, {d})"
        if isinstance(m, ResNetBlock):
            conv = m.conv_a[1]
            return f"ResNetBlock({conv.in_channels}, {conv.out_channels}, {d})"
        if isinstance(m, ClassifierHead):
            p = m.dropout.p if isinstance(m.dropout, nn.Dropout) else 0.0
            return f"ClassifierHead({m.linear.in_features}, {m.linear.out_features}, {p!r})"
        raise ExportError(f"no constructor writer for {type(m).__name__}")  # pragma: no cover

    def copied_sources(self) -> list[str]:
        needed: list[Any] = []
        for cls, deps in _COPIED.items():
            if cls in self.used:
                needed.extend(d for d in deps if d not in needed)
        helpers = [h for h in _HELPERS if h in needed]
        classes = [c for c in _COPIED if c in self.used or c in needed]
        return [inspect.getsource(obj).rstrip() for obj in (*helpers, *classes)]


def _one(value: Any) -> str:
    """``3`` for ``(3, 3)``; the tuple when its entries differ."""
    if isinstance(value, tuple):
        if len(set(value)) == 1:
            return repr(value[0])
        return repr(value)
    return repr(value)


def _torch_leaf(m: nn.Module) -> str:
    name = type(m).__name__
    if isinstance(m, nn.Conv1d | nn.Conv2d):
        n = len(m.kernel_size)
        args = [str(m.in_channels), str(m.out_channels), _one(m.kernel_size)]
        if m.stride != (1,) * n:
            args.append(f"stride={_one(m.stride)}")
        if m.padding != (0,) * n:
            args.append(f"padding={_one(m.padding)}")
        if m.dilation != (1,) * n:
            args.append(f"dilation={_one(m.dilation)}")
        if m.groups != 1:
            args.append(f"groups={m.groups}")
        if m.bias is None:
            args.append("bias=False")
        if m.padding_mode != "zeros":
            args.append(f"padding_mode={m.padding_mode!r}")
        return f"nn.{name}({', '.join(args)})"
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        args = [str(m.num_features)]
        if m.eps != 1e-5:
            args.append(f"eps={m.eps!r}")
        if m.momentum != 0.1:
            args.append(f"momentum={m.momentum!r}")
        if not m.affine:
            args.append("affine=False")
        if not m.track_running_stats:
            args.append("track_running_stats=False")
        return f"nn.{name}({', '.join(args)})"
    if isinstance(m, nn.Linear):
        bias = "" if m.bias is not None else ", bias=False"
        return f"nn.Linear({m.in_features}, {m.out_features}{bias})"
    if isinstance(m, nn.AvgPool1d | nn.AvgPool2d | nn.MaxPool1d | nn.MaxPool2d):
        args = [_one(m.kernel_size), f"stride={_one(m.stride)}"]
        if _one(m.padding) != "0":
            args.append(f"padding={_one(m.padding)}")
        if _one(getattr(m, "dilation", 1)) != "1":
            args.append(f"dilation={_one(m.dilation)}")
        if getattr(m, "return_indices", False):
            raise ExportError(f"cannot write a {name} that returns indices")
        if m.ceil_mode:
            args.append("ceil_mode=True")
        if getattr(m, "count_include_pad", True) is False:
            args.append("count_include_pad=False")
        return f"nn.{name}({', '.join(args)})"
    if isinstance(m, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d):
        return f"nn.{name}({_one(m.output_size)})"
    if type(m) is nn.Flatten:
        if (m.start_dim, m.end_dim) == (1, -1):
            return "nn.Flatten()"
        return f"nn.Flatten({m.start_dim}, {m.end_dim})"
    if type(m) is nn.ReLU:
        return "nn.ReLU(inplace=True)" if m.inplace else "nn.ReLU()"
    if type(m) is nn.Dropout:
        return f"nn.Dropout({m.p!r})"
    if type(m) is nn.Identity:
        return "nn.Identity()"
    raise ExportError(f"cannot write a {name} as PyTorch source")


# --- forward passes -----------------------------------------------------------------------------
def _macro_forward(model: MacroNetwork, arch: Architecture) -> str:
    layers, needed = model.plan(arch)
    lines = ["h = self.stem(x)"]
    for index, (op, skips) in enumerate(layers):
        source = "h" if index == 0 else f"h{index - 1}"
        if index in model.space.reductions:
            lines.append(f"# resolution halves before layer {index}")
            for j in range(index):
                if (index, j) in needed:
                    lines.append(f'h{j} = self.reduce["{_reduce_key(index, j)}"](h{j})')
        terms = [f'self.layers[{index}]["{op}"]({source})', *(f"h{j}" for j in skips)]
        lines.append(f"h{index} = " + " + ".join(terms))
    lines.append(f"return self.head(h{len(layers) - 1})")
    return _method("forward(self, x: torch.Tensor) -> torch.Tensor", lines)


_MICRO_FORWARD = (
    f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    f"{INDENT * 2}s0 = s1 = self.stem(x)\n"
    f"{INDENT * 2}for cell in self.cells:\n"
    f"{INDENT * 3}s0, s1 = s1, cell(s0, s1)\n"
    f"{INDENT * 2}return self.head(s1)\n"
)

_NB201_FORWARD = (
    f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    f"{INDENT * 2}x = self.stem(x)\n"
    f"{INDENT * 2}for cell in self.cells:\n"
    f"{INDENT * 3}x = cell(x)\n"
    f"{INDENT * 2}return self.classifier(self.lastact(x).flatten(2).mean(dim=2))\n"
)


_METAQNN_FORWARD = (
    f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    f"{INDENT * 2}return self.classifier(self.dropout(self.body(x)))\n"
)


def _metaqnn_body(writer: _Writer, model: MetaQNNNetwork, level: int) -> str:
    """``nn.Sequential(...)`` of the body, one comment per MetaQNN layer: its label, the
    body indices of its modules (the state_dict's ``body.<i>``) and its output shape."""
    shapes: list[tuple[int, ...]] = []
    with torch.no_grad():
        h = torch.zeros(1, *model.input_shape)
        for module in model.body:
            h = module(h)
            shapes.append(tuple(h.shape[1:]))
    pad = INDENT * (level + 1)
    lines = []
    for label, kind, positions in metaqnn_layers(model):
        if not positions:
            continue
        first, last = positions[0], positions[-1]
        where = f"body.{first}" if first == last else f"body.{first}-{last}"
        then = " (the classifier follows)" if kind == SM else ""
        lines.append(f"{pad}# {label}: {where}, output {shapes[last]}{then}")
        lines += [f"{pad}{writer.expr(model.body[i], level + 1)}," for i in positions]
    return "nn.Sequential(\n" + "\n".join(lines) + f"\n{INDENT * level})"


def _method(signature: str, lines: list[str]) -> str:
    return f"{INDENT}def {signature}:\n" + "".join(f"{INDENT * 2}{line}\n" for line in lines)


def _micro_cells(model: MicroNetwork, arch: Architecture) -> list[str]:
    """``NormalCell`` / ``ReduceCell`` classes with the node wiring unrolled."""
    choices = model.space.cell_choices(arch)
    present = {"reduce" if c.reduction else "normal" for c in model.cells}  # type: ignore[union-attr]
    classes = []
    for kind in ("normal", "reduce"):
        if kind not in present:
            continue
        names = ["in0", "in1"] + [f"node{j}" for j in range(len(choices[kind]))]
        lines = ["in0 = self.pre0(s0)", "in1 = self.pre1(s1)"]
        doc = []
        for node, (in0, in1, op0, op1) in enumerate(choices[kind]):
            a = f'self.edges["n{node}_s0_i{in0}_{op0}"]({names[in0]})'
            b = f'self.edges["n{node}_s1_i{in1}_{op1}"]({names[in1]})'
            lines.append(f"node{node} = {a} + {b}")
            doc.append(f"node{node} = {op0}({names[in0]}) + {op1}({names[in1]})")
        outputs = ", ".join(f"node{j}" for j in range(len(choices[kind])))
        lines.append(f"return torch.cat([{outputs}], dim=1)")
        title = (
            "Reduction cell (ops on in0/in1 have stride 2)" if kind == "reduce" else "Normal cell"
        )
        classes.append(
            _cell_class(
                f"{kind.capitalize()}Cell",
                title,
                doc + [f"output = concat({outputs})"],
                "pre0: nn.Module, pre1: nn.Module, edges: nn.ModuleDict",
                ["pre0", "pre1", "edges"],
                "forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor",
                lines,
            )
        )
    return classes


def _nb201_cell(space: SearchSpace, arch: Architecture) -> list[str]:
    from nas.spaces.nb201 import NB201_OPS

    names = ["x", "node1", "node2", "node3"]
    lines, doc = [], []
    for target in range(1, 4):
        edges = [(e, s) for e, (t, s) in enumerate(NB201_EDGES) if t == target]
        terms = [f"self.edges[{e}]({names[s]})" for e, s in edges]
        lines.append(f"{names[target]} = " + " + ".join(terms))
        ops_ = [f"{NB201_OPS[arch.choices[e]]}({names[s]})" for e, s in edges]
        doc.append(f"{names[target]} = " + " + ".join(ops_))
    lines.append("return node3")
    arch_str = space.arch_str(arch)  # type: ignore[attr-defined]
    return [
        _cell_class(
            "Cell",
            "NAS-Bench-201 cell (none: zeros)",
            [arch_str, "", *doc],
            "edges: nn.ModuleList",
            ["edges"],
            "forward(self, x: torch.Tensor) -> torch.Tensor",
            lines,
        )
    ]


def _cell_class(
    name: str,
    title: str,
    doc: list[str],
    params: str,
    attrs: list[str],
    signature: str,
    lines: list[str],
) -> str:
    lines_ = [f"{INDENT}    {d}" if d else "" for d in doc]
    docstring = "\n".join([f'{INDENT}"""{title}:', "", *lines_])
    init = [f"{INDENT}def __init__(self, {params}) -> None:", f"{INDENT * 2}super().__init__()"]
    init += [f"{INDENT * 2}self.{a} = {a}" for a in attrs]
    return (
        f'class {name}(nn.Module):\n{docstring}\n{INDENT}"""\n\n'
        + "\n".join(init)
        + "\n\n"
        + _method(signature, lines)
    )


# --- the file -----------------------------------------------------------------------------------
def _assemble(
    *,
    space: SearchSpace,
    arch: Architecture,
    input_shape: tuple[int, ...],
    num_classes: int,
    options: dict[str, int],
    copied: list[str],
    extra_classes: list[str],
    init_body: str,
    forward: str,
) -> str:
    layout = "(N, C, L)" if len(input_shape) == 2 else "(N, C, H, W)"
    uses_f = any("F." in text for text in copied)
    header = f'''"""A standalone PyTorch module (imports torch only) for the architecture
{arch.key}.

Written by nas-service {package_version()}. Input: {layout} tensors, each example of shape
{input_shape}; output: {num_classes} logits. The state_dict keys are those of nas-service's
own network, so its saved weights load with ``load_state_dict(..., strict=True)``.

Usage:
    import torch
    from model import build  # this file, saved as model.py
    net = build("weights.pt").eval()  # or build() for random weights
    logits = net(torch.zeros(1, *INPUT_SHAPE))

Or run it: ``python model.py [weights.pt]`` prints the output shape and parameter count.
"""

from __future__ import annotations

import sys

import torch
{"import torch.nn.functional as F" + chr(10) if uses_f else ""}from torch import nn

ARCHITECTURE = {_literal(arch.to_dict())}
SPACE = {_literal({"name": space.name, "version": space.version, "config": space.config})}
NETWORK_OPTIONS = {_literal(options)}
GENOTYPE = {_literal(space.describe(arch))}
INPUT_SHAPE = {input_shape!r}
NUM_CLASSES = {num_classes}
'''
    net = (
        "class ExportedNet(nn.Module):\n"
        f'{INDENT}"""The {space.name} network of ARCHITECTURE; see GENOTYPE."""\n\n'
        f"{INDENT}def __init__(self) -> None:\n"
        f"{INDENT * 2}super().__init__()\n"
        f"{init_body}\n\n"
        f"{forward}"
    )
    footer = '''def build(weights: str | None = None) -> ExportedNet:
    """The network, with ``weights`` (a saved state_dict) loaded strictly when given."""
    net = ExportedNet()
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    return net


if __name__ == "__main__":
    net = build(sys.argv[1] if len(sys.argv) > 1 else None).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, *INPUT_SHAPE))
    print(f"output {tuple(out.shape)}, {sum(p.numel() for p in net.parameters())} parameters")
'''
    blocks = [header.rstrip(), *copied, *(c.rstrip() for c in extra_classes), net.rstrip(), footer]
    return "\n\n\n".join(blocks).rstrip() + "\n"


def _literal(value: Any, level: int = 0) -> str:
    """A Python literal of JSON-like data, double-quoted, split over lines when long."""
    flat = _flat(value)
    if len(flat) + 4 * level <= 80 or not isinstance(value, dict | list | tuple) or not value:
        return flat
    pad, end = INDENT * (level + 1), INDENT * level
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(str(k))}: {_literal(v, level + 1)},\n" for k, v in value.items()
        ]
        return "{\n" + "".join(items) + end + "}"
    if all(not isinstance(v, dict | list | tuple) for v in value):
        words, lines, line = [_flat(v) for v in value], [], ""
        for word in words:
            if line and len(pad) + len(line) + len(word) + 2 > 88:
                lines.append(line)
                line = ""
            line += word + ", "
        lines.append(line)
        body = "".join(f"{pad}{text.rstrip()}\n" for text in lines)
    else:
        body = "".join(f"{pad}{_literal(v, level + 1)},\n" for v in value)
    return "[\n" + body + end + "]"


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _verify(source: str, model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Run the source in a fresh namespace: same keys and shapes, same outputs."""
    namespace: dict[str, Any] = {"__name__": "nas_exported_model"}
    try:
        exec(compile(source, "<exported model>", "exec"), namespace)  # noqa: S102
        exported: nn.Module = namespace["build"]().eval()
    except Exception as error:  # pragma: no cover - a writer bug
        raise ExportError(f"the generated source does not run: {error!r}") from error
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in exported.state_dict().items()}
    if ours != theirs:  # pragma: no cover - a writer bug
        diff = sorted(set(ours.items()) ^ set(theirs.items()))[:5]
        raise ExportError(f"the generated module's state_dict differs from ours: {diff}")
    exported.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (exported(x) - model(x)).abs().max().item()
    if not gap <= 1e-5:  # pragma: no cover - a writer bug
        raise ExportError(f"the generated module's outputs differ from ours by {gap:g}")
