"""One self-contained PyTorch file for one architecture, importing torch only.

The constructor is written from the module tree of the network that ``build_network`` makes
(so the ``state_dict`` keys are the same by construction); the op classes are copied from
``nas.ops`` (only those used); ``forward`` is unrolled for the architecture, one line per node.
What only a space knows (its ``forward``, its cells, a layer comment per MetaQNN layer) the
network writes itself in its ``write_source`` hook, with the ``SourceWriter`` given to it.
"""

from __future__ import annotations

import functools
import inspect
import json
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nas import ops
from nas.architecture import Architecture
from nas.errors import ExportError
from nas.export.network import build_network
from nas.export.provenance import package_version
from nas.models.base import ClassifierHead
from nas.spaces.base import SearchSpace
from nas.training import forked_rng

#: ``inspect.getsource`` of a class parses its module (``ast.parse``), which CPython 3.11
#: cannot do in two threads at once ("AST constructor recursion depth mismatch", a 500 for
#: one of two pytorch exports served together): one at a time, each source read once.
_SOURCE_LOCK = threading.Lock()


@functools.cache
def _cached_source(obj: Any) -> str:
    return inspect.getsource(obj).rstrip()


def source_of(obj: Any) -> str:
    """The source of a helper or class the written modules copy (read once per process)."""
    with _SOURCE_LOCK:
        return _cached_source(obj)


__all__ = ["CONTEXT_FILE", "INDENT", "RATES_FILE", "SourceWriter", "export_pytorch_source"]

INDENT = "    "
#: Meta-SGD's learned per-parameter step sizes beside ``model.py`` in the pytorch bundle.
RATES_FILE = "rates.pt"
#: The bundle's file of a metric-based learner's own weights (Matching Networks' LSTMs).
CONTEXT_FILE = "context.pt"

#: Shared classes whose source is copied into the file, in file order, with what they need.
_COPIED: dict[type, tuple[Callable[..., Any] | type, ...]] = {
    ops.ReLUConvBN: (ops.conv_layer, ops.batch_norm),
    ops.SepConv: (ops.conv_layer, ops.batch_norm),
    ops.Pool: (),
    ops.FactorizedReduce: (ops.conv_layer, ops.batch_norm),
    ops.Zero: (),
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
    adaptation: Mapping[str, Any] | None = None,
    inputs: str | None = None,
) -> str:
    """Python source of ``ExportedNet`` (an ``nn.Module``) and ``build(weights=None)`` for
    ``arch``, whose ``state_dict`` keys equal those of ``build_network(...)``, so saved weights
    load with ``strict=True``. ``verify`` runs the source here and compares keys and outputs.

    ``adaptation`` (meta-learned weights: ``algorithm``, ``loss``, ``steps``, ``lr`` and
    ``rates``, the file name of Meta-SGD's learned step sizes or ``None``) adds
    ``ADAPTATION``, ``load_rates`` and ``adapt(model, support_x, support_y, steps, lr,
    rates)``: gradient steps on a task's support set with the meta-training task loss, the
    same arithmetic as ``nas.metalearning.adapt``. With a ``comparison`` (a metric-based
    learner's: ``MetaWeights.comparison``) it adds ``embedder(model)`` and ``classify(model,
    support_x, support_y, query_x)`` instead: the network up to its classifier embeds, and
    query examples are labelled by the learner's comparison with the support set.
    """
    with forked_rng(0):
        model = build_network(space, arch, input_shape, num_classes, options).eval()
    writer = SourceWriter(model)
    parts = model.write_source(writer)
    body = "\n".join(
        f"{INDENT * 2}self.{name} = "
        + (parts.attributes[name] if name in parts.attributes else writer.expr(child, 2))
        for name, child in model.named_children()
    )
    source = _assemble(
        space=space,
        arch=arch,
        input_shape=tuple(int(v) for v in input_shape),
        num_classes=num_classes,
        options=space.network_options(options),
        copied=writer.copied_sources(),
        extra_classes=list(parts.classes),
        init_body=body,
        forward=parts.forward,
        adaptation=adaptation,
        inputs=inputs,
        classifier=model.classifier_path,
    )
    if verify:
        _verify(source, model, tuple(input_shape))
    return source


# --- module tree -> constructor expressions ---------------------------------------------------
#: How a module of a space's own class is written: the class name the file defines for it and
#: the attributes passed to that class's constructor.
CallWriter = Callable[[nn.Module], tuple[str, Sequence[str]]]
#: How a module whose class source is copied into the file is constructed: ``(module, dim)``.
CopyWriter = Callable[[nn.Module, int], str]


class SourceWriter:
    """Writes each module as the expression that rebuilds it; records the classes it uses.

    The shared op classes of ``nas.ops`` and ``ClassifierHead`` are known here. A network's
    ``write_source`` hook teaches it its space's own classes: ``write_as`` for modules written
    as a call of a class the network's source defines (a cell with its wiring unrolled), and
    ``copy_class`` for a class whose source is copied into the file as it is.
    """

    INDENT = INDENT

    def __init__(self, model: nn.Module) -> None:
        self.dim = int(model.dim)  # type: ignore[arg-type]
        self.used: set[type] = set()
        self.channels: dict[int, int] = {}
        self._calls: dict[type, CallWriter] = {}
        self._copies: dict[type, tuple[tuple[Callable[..., Any] | type, ...], CopyWriter]] = {}
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

    # --- what a network's hook registers ---------------------------------------------------
    def write_as(self, cls: type[nn.Module], call: CallWriter) -> None:
        """Write modules of ``cls`` as ``Name(attr=<expr>, ...)``, ``call(module)`` giving the
        name (a class the network's ``NetworkSource.classes`` defines) and the attributes."""
        self._calls[cls] = call

    def copy_class(
        self,
        cls: type[nn.Module],
        construct: CopyWriter,
        needs: Sequence[Callable[..., Any] | type] = (),
    ) -> None:
        """Copy the source of ``cls`` into the file when a module of it is written (after the
        shared op classes), with the helpers and op classes it ``needs``;
        ``construct(module, dim)`` writes one instance's constructor call."""
        self._copies[cls] = (tuple(needs), construct)

    # --- writing ----------------------------------------------------------------------------
    def expr(self, m: nn.Module, level: int) -> str:
        kind = type(m)
        if kind in _COPIED or kind in self._copies:
            self.used.add(kind)
            return self._copied(m)
        if kind in self._calls:
            return self._call(m, level)
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

    def _call(self, module: nn.Module, level: int) -> str:
        """``NormalCell(pre0=..., pre1=..., edges=...)``: a class of the network's source."""
        name, attributes = self._calls[type(module)](module)
        pad = INDENT * (level + 1)
        parts = [f"{pad}{a}={self.expr(getattr(module, a), level + 1)},\n" for a in attributes]
        return f"{name}(\n" + "".join(parts) + f"{INDENT * level})"

    def _copied(self, m: nn.Module) -> str:
        d = self.dim
        if type(m) in self._copies:
            return self._copies[type(m)][1](m, d)
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
        if isinstance(m, ClassifierHead):
            p = m.dropout.p if isinstance(m.dropout, nn.Dropout) else 0.0
            return f"ClassifierHead({m.linear.in_features}, {m.linear.out_features}, {p!r})"
        raise ExportError(f"no constructor writer for {type(m).__name__}")  # pragma: no cover

    def copied_sources(self) -> list[str]:
        """The source of every helper and class the written modules use, in file order: the
        helpers, the shared op classes, then the space's copied classes."""
        requirements = {**_COPIED, **{cls: needs for cls, (needs, _) in self._copies.items()}}
        needed: list[Any] = []
        for cls, deps in requirements.items():
            if cls in self.used:
                needed.extend(d for d in deps if d not in needed)
        helpers = [h for h in _HELPERS if h in needed]
        classes = [c for c in requirements if c in self.used or c in needed]
        return [source_of(obj) for obj in (*helpers, *classes)]

    # --- formatting, for the hooks ----------------------------------------------------------
    @staticmethod
    def method(signature: str, lines: Sequence[str]) -> str:
        """A method of a class body: ``def <signature>:`` and ``lines`` as its body."""
        return f"{INDENT}def {signature}:\n" + "".join(f"{INDENT * 2}{line}\n" for line in lines)

    @staticmethod
    def module_class(
        name: str,
        title: str,
        doc: Sequence[str],
        params: str,
        attrs: Sequence[str],
        signature: str,
        lines: Sequence[str],
    ) -> str:
        """An ``nn.Module`` class whose constructor stores ``attrs`` (given as ``params``) and
        whose forward method is ``signature`` with ``lines``; ``title`` and ``doc`` make its
        docstring (e.g. a cell with its node wiring)."""
        lines_ = [f"{INDENT}    {d}" if d else "" for d in doc]
        docstring = "\n".join([f'{INDENT}"""{title}:', "", *lines_])
        init = [
            f"{INDENT}def __init__(self, {params}) -> None:",
            f"{INDENT * 2}super().__init__()",
        ]
        init += [f"{INDENT * 2}self.{a} = {a}" for a in attrs]
        return (
            f'class {name}(nn.Module):\n{docstring}\n{INDENT}"""\n\n'
            + "\n".join(init)
            + "\n\n"
            + SourceWriter.method(signature, lines)
        )


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
    if type(m) is nn.Tanh:
        return "nn.Tanh()"
    if type(m) is nn.LayerNorm:
        args = [_one(tuple(m.normalized_shape))]
        if m.eps != 1e-5:
            args.append(f"eps={m.eps!r}")
        if not m.elementwise_affine:
            args.append("elementwise_affine=False")
        elif m.bias is None:
            args.append("bias=False")
        return f"nn.LayerNorm({', '.join(args)})"
    if type(m) is nn.Dropout:
        return f"nn.Dropout({m.p!r})"
    if type(m) is nn.Identity:
        return "nn.Identity()"
    raise ExportError(f"cannot write a {name} as PyTorch source")


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
    adaptation: Mapping[str, Any] | None = None,
    inputs: str | None = None,
    classifier: str = "head",
) -> str:
    comparison = None if adaptation is None else adaptation.get("comparison")
    layout = {1: "(N, D)", 2: "(N, C, L)", 3: "(N, C, H, W)"}.get(len(input_shape), "(N, ...)")
    outputs = "1 value" if num_classes == 1 else f"{num_classes} logits"
    about = textwrap.fill(
        f"Written by nas-service {package_version()}. Input: {layout} tensors, each example "
        f"of shape {input_shape}; output: {outputs} per example. The state_dict keys are "
        "those of nas-service's own network, so its saved weights load with "
        "``load_state_dict(..., strict=True)``.",
        width=90,
    )
    if inputs:
        about += "\n\n" + textwrap.fill(f"Inputs: {inputs}.", width=90)
    uses_f = any("F." in text for text in copied)
    header = f'''"""A standalone PyTorch module (imports torch only) for the architecture
{arch.key}.

{about}

Usage:
    import torch
    from model import build  # this file, saved as model.py
    net = build("weights.pt").eval()  # or build() for random weights
    logits = net(torch.zeros(1, *INPUT_SHAPE))

Or run it: ``python model.py [weights.pt]`` prints the output shape and parameter count.
{_usage(adaptation)}"""

from __future__ import annotations

{"import copy" + chr(10) if adaptation is not None else ""}import sys

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
    if comparison is not None:
        context = adaptation.get("extra")  # type: ignore[union-attr]
        settings = {
            "algorithm": adaptation.get("algorithm"),  # type: ignore[union-attr]
            "comparison": dict(comparison),
            "classifier": classifier,
            "context": context,
        }
        code = _CLASSIFY + _COMPARE[comparison["kind"]]
        if context is not None:
            code += _FULL_CONTEXT
        footer = footer.replace(
            "\n\nif __name__", f"\n\nADAPTATION = {_literal(settings)}\n\n\n{code}\n\nif __name__"
        )
    elif adaptation is not None:
        settings = {k: adaptation.get(k) for k in ("algorithm", "loss", "steps", "lr", "rates")}
        footer = footer.replace(
            "\n\nif __name__", f"\n\nADAPTATION = {_literal(settings)}\n\n\n{_ADAPT}\n\nif __name__"
        )
    blocks = [header.rstrip(), *copied, *(c.rstrip() for c in extra_classes), net.rstrip(), footer]
    return "\n\n\n".join(blocks).rstrip() + "\n"


_ADAPT_USAGE = f"""
Meta-learned weights: they are an initialisation that adapts to a new task from a few
examples (its support set) by gradient steps, as in meta-training (ADAPTATION says how):
    net = build("weights.pt")
    task_net = adapt(net, support_x, support_y)  # a copy, after ADAPTATION["steps"] steps
    predictions = task_net(query_x)
Meta-SGD learned one step size per parameter: pass them, adapt(..., rates="{RATES_FILE}").
"""


def _usage(adaptation: Mapping[str, Any] | None) -> str:
    if adaptation is None:
        return ""
    comparison = adaptation.get("comparison")
    if comparison is None:
        return _ADAPT_USAGE
    if comparison.get("kind") == "finetune":
        head = (
            'Pretrained body: the network up to its classifier (ADAPTATION["classifier"], left\n'
            "as initialised: pretraining had one over its own classes, not exported) embeds\n"
            "examples, with the running statistics of pretraining, and a new task's query\n"
            "examples are labelled by a new linear head fitted on its support set's embeddings\n"
            '(ADAPTATION["comparison"]):\n'
        )
        tail = ""
    else:
        head = (
            'Meta-learned embedding: the network up to its classifier (ADAPTATION["classifier"],\n'
            "left as initialised: meta-training never used it) embeds examples, and a new task's\n"
            "query examples are labelled by comparing their embeddings with its support set's\n"
            '(ADAPTATION["comparison"]):\n'
        )
        tail = (
            "Batch norms use each call's batch statistics, as in meta-training: classify a\n"
            "task's query examples together, not one at a time.\n"
        )
    if adaptation.get("extra") is not None:
        tail += (
            "Full-context embeddings read the support set with LSTMs: pass their weights,\n"
            f'classify(..., context="{CONTEXT_FILE}").\n'
        )
    return "\n" + head + _CLASSIFY_EXAMPLE + tail


#: Shared by ``adapt`` and ``classify`` (a file has one or the other).
_BATCH_STATISTICS = '''def _batch_statistics(model: nn.Module) -> None:
    """Batch norms normalise each call's batch with its own statistics, as in
    meta-training (there are no running statistics to use)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False
            module.running_mean = None
            module.running_var = None
            module.num_batches_tracked = None
'''

_CLASSIFY_EXAMPLE = """    net = build("weights.pt")
    log_probs = classify(net, support_x, support_y, query_x)  # (queries, ways)
    predictions = log_probs.argmax(dim=-1)
"""

_CLASSIFY = (
    _BATCH_STATISTICS
    + '''

def embedder(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that answers embeddings: its classifier (ADAPTATION["classifier"])
    replaced by an identity, in eval mode, its batch norms using each batch's statistics
    (unless ADAPTATION["comparison"]["batch_statistics"] is false: then their running
    statistics, as after ordinary training)."""
    embedding = copy.deepcopy(model).eval()
    if ADAPTATION["comparison"].get("batch_statistics", True):
        _batch_statistics(embedding)
    *parents, last = ADAPTATION["classifier"].split(".")
    owner = embedding
    for part in parents:
        owner = getattr(owner, part)
    setattr(owner, last, nn.Identity())
    return embedding


def classify(
    model: nn.Module,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    ways: int | None = None,
    context: dict[str, torch.Tensor] | str | None = None,
) -> torch.Tensor:
    """``(queries, ways)`` log-probabilities of one task's query examples, from its support
    set (see ADAPTATION["comparison"] for how). The support and the query examples are
    embedded in one call each, as in meta-training; where batch norms use each batch's
    statistics (ADAPTATION["comparison"].get("batch_statistics", True)), classify a task's
    queries together (as many per class as at meta-test), never one example at a time.

    Args:
        model: the network, e.g. ``build("weights.pt")`` (the meta-learned weights), or
            ``embedder(...)``'s copy of it (kept to classify many tasks).
        support_x: the task's labelled examples, ``(S, *INPUT_SHAPE)``.
        support_y: their class labels 0..ways-1, ``(S,)``, every class among them.
        query_x: the examples to label, ``(Q, *INPUT_SHAPE)``.
        ways: the task's classes (default: the largest label plus one).
        context: full-context embeddings' LSTM weights (Matching Networks with ``fce``:
            ADAPTATION["context"], the bundle's file, or its loaded dict); ``None`` else.
            They read the support set in sequence, so its order counts: meta-training gave
            it by class (all of class 0, then class 1, ...), and ``classify`` sorts it so.
    """
    if ADAPTATION["context"] is not None and context is None:
        raise ValueError(
            "this embedding reads the support set with LSTMs (full-context embeddings): "
            f"pass context={ADAPTATION['context']!r} (the bundle's file)"
        )
    if ADAPTATION["context"] is None and context is not None:
        raise ValueError("this model takes no context: it has no full-context embeddings")
    if isinstance(context, str):
        context = torch.load(context, map_location="cpu", weights_only=True)
    if support_y.dim() != 1 or len(support_y) != len(support_x) or len(support_y) == 0:
        raise ValueError(
            f"support_y must be one label per support example: {tuple(support_y.shape)} "
            f"labels for {len(support_x)} examples"
        )
    ways = int(support_y.max()) + 1 if ways is None else ways
    if int(support_y.min()) < 0 or int(support_y.max()) >= ways:
        raise ValueError(f"support_y must hold labels 0..{ways - 1}, got {support_y.tolist()}")
    if context is not None:  # in class order, as meta-training gave it
        order = torch.argsort(support_y, stable=True)
        support_x, support_y = support_x[order.to(support_x.device)], support_y[order]
    embedding = model if isinstance(_classifier(model), nn.Identity) else embedder(model)
    with torch.no_grad():
        support, query = embedding(support_x), embedding(query_x)
    labels = torch.arange(ways, device=support.device)
    one_hot = (support_y.to(support.device)[:, None] == labels).to(support.dtype)
    if bool((one_hot.sum(dim=0) == 0).any()):
        raise ValueError(f"support_y must hold every label 0..{ways - 1}")
    if context is not None:
        context = {k: v.to(support.device, support.dtype) for k, v in context.items()}
        support, query = _full_context(context, support, query)
    return _compare(support, one_hot, query)


def _classifier(model: nn.Module) -> nn.Module:
    for part in ADAPTATION["classifier"].split("."):
        model = getattr(model, part)
    return model
'''
)

#: ``_compare(support, one_hot, query)`` of each ``comparison`` kind: the learner's
#: ``log_probs`` (``nas.evaluators.protonet``, ``nas.evaluators.matching``) on embeddings.
_COMPARE = {
    "prototypes": '''

def _compare(support: torch.Tensor, one_hot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Prototypical Networks: each class's prototype is the mean embedding of its support
    examples; the logits are minus the squared Euclidean distances to them."""
    prototypes = (one_hot.T @ support) / one_hot.sum(dim=0)[:, None]
    distances = ((query[:, None, :] - prototypes[None, :, :]) ** 2).sum(dim=-1)
    return torch.log_softmax(-distances, dim=-1)
''',
    "cosine": '''

def _compare(support: torch.Tensor, one_hot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Matching Networks: a softmax attention over the support examples by cosine
    similarity (times ADAPTATION["comparison"]["scale"]) votes their labels."""
    cosine = nn.functional.normalize(query, dim=-1) @ nn.functional.normalize(support, dim=-1).T
    attention = torch.softmax(ADAPTATION["comparison"]["scale"] * cosine, dim=-1)
    return torch.log((attention @ one_hot).clamp_min(1e-12))
''',
    "finetune": '''

def _compare(support: torch.Tensor, one_hot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Pretrain, then fine-tune (Baseline): on L2-normalised embeddings, a new linear head,
    starting at zero, takes ADAPTATION["comparison"]["steps"] full-batch gradient steps of
    ADAPTATION["comparison"]["lr"] on the support set's cross-entropy."""
    support = nn.functional.normalize(support, dim=-1)
    query = nn.functional.normalize(query, dim=-1)
    w = support.new_zeros(one_hot.shape[1], support.shape[-1])
    b = support.new_zeros(one_hot.shape[1])
    lr = ADAPTATION["comparison"]["lr"]
    for _ in range(ADAPTATION["comparison"]["steps"]):
        # the mean cross-entropy's gradient, written out (no autograd: inference_mode works)
        error = (torch.softmax(support @ w.T + b, dim=-1) - one_hot) / len(support)
        w, b = w - lr * (error.T @ support), b - lr * error.sum(dim=0)
    return torch.log_softmax(query @ w.T + b, dim=-1)
''',
}

#: Matching Networks' full-context embeddings (``nas.evaluators.matching``'s ``_context``).
_FULL_CONTEXT = '''

def _cell(
    p: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step with the weights ``prefix.w_ih``, ``prefix.w_hh``, ``prefix.bias``."""
    gates = x @ p[f"{prefix}.w_ih"].T + h @ p[f"{prefix}.w_hh"].T + p[f"{prefix}.bias"]
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _full_context(
    p: dict[str, torch.Tensor], support: torch.Tensor, query: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The support embeddings read by a bidirectional LSTM (added to them), each query's by
    an LSTM with attention over those for ADAPTATION["comparison"]["fce_steps"] steps."""
    zero = support.new_zeros(support.shape[1])
    h, c, forward = zero, zero, []
    for i in range(support.shape[0]):
        h, c = _cell(p, "support_fwd", support[i], h, c)
        forward.append(h)
    h, c, backward = zero, zero, []
    for i in reversed(range(support.shape[0])):
        h, c = _cell(p, "support_bwd", support[i], h, c)
        backward.append(h)
    g = support + torch.stack(forward) + torch.stack(backward[::-1])
    h = torch.zeros_like(query)
    c, read = torch.zeros_like(query), torch.zeros_like(query)
    for _ in range(ADAPTATION["comparison"]["fce_steps"]):
        hidden, c = _cell(p, "query", query, h + read, c)
        h = hidden + query
        read = torch.softmax(h @ g.T, dim=-1) @ g
    return g, h
'''

_ADAPT = (
    '''def load_rates(path: str = "rates.pt") -> dict[str, torch.Tensor]:
    """Meta-SGD's learned inner learning rates (the bundle's rates.pt): one tensor per
    parameter, by the parameter's name, of its shape."""
    return torch.load(path, map_location="cpu", weights_only=True)


'''
    + _BATCH_STATISTICS
    + '''

def adapt(
    model: nn.Module,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    steps: int = ADAPTATION["steps"],
    lr: float | None = ADAPTATION["lr"],
    rates: dict[str, torch.Tensor] | str | None = None,
) -> nn.Module:
    """A copy of ``model`` adapted to one task: ``steps`` plain gradient-descent steps on
    the task's support set, each ``p <- p - lr * d loss / d p`` for every parameter, with
    the loss of meta-training (ADAPTATION["loss"]: ``mse``, the mean squared error
    against ``support_y`` of the outputs' shape; ``cross_entropy``, labels 0..N-1 of
    the N outputs). ``model`` itself is left as it is.

    Args:
        model: the network, e.g. ``build("weights.pt")`` (the meta-learned weights).
        support_x: the task's examples, ``(K, *INPUT_SHAPE)`` (classification: N * K).
        support_y: their targets (``mse``) or class labels (``cross_entropy``).
        steps: gradient steps (default: those the search scored its models after).
        lr: one step size for every parameter (default: that of the search).
        rates: per-parameter step sizes instead of ``lr`` (Meta-SGD: ``"rates.pt"`` of the
            bundle, or ``load_rates(...)``'s dict); a path is loaded with ``load_rates``.

    The copy is in eval mode (no dropout) and its batch norms use the statistics of each
    batch they are given (``steps=0``: the meta-learned network as it was meta-trained),
    so predict a task's query examples together.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(rates, str):
        rates = load_rates(rates)
    if rates is None and lr is None:
        raise ValueError(
            "this model learned one step size per parameter (Meta-SGD): pass "
            "rates='rates.pt' (the bundle's file), or an lr of your own"
        )
    # gradients even when called under no_grad or inference_mode (its tensors copied out)
    with torch.inference_mode(False), torch.enable_grad():
        adapted = copy.deepcopy(model).eval()
        _batch_statistics(adapted)
        support_x, support_y = support_x.clone(), support_y.clone()
        params = dict(adapted.named_parameters())
        for p in params.values():
            p.requires_grad_(True)
        for _ in range(steps):
            out = adapted(support_x)
            if ADAPTATION["loss"] == "cross_entropy":
                loss = torch.nn.functional.cross_entropy(out, support_y)
            else:
                if out.shape != support_y.shape:  # (K,) against (K, 1) broadcast to (K, K)
                    raise ValueError(
                        f"support_y has shape {tuple(support_y.shape)} and the outputs "
                        f"{tuple(out.shape)}: give targets of the outputs' shape, e.g. "
                        "y.reshape(-1, 1) for one output"
                    )
                loss = ((out - support_y) ** 2).mean()
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for (name, p), g in zip(params.items(), grads):
                    p -= (rates[name] if rates is not None else lr) * g
    return adapted
'''
)


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
