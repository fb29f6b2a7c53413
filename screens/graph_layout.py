"""A layered drawing of a workflow graph, as characters.

The classic Sugiyama steps, kept small: back-edges (a Loop's repeat) are found by a depth
first search and set aside; nodes get layers by longest path from the sources; an edge
that spans several layers gets dummy points so it is routed through the gaps; each layer
is ordered by barycentre sweeps (down and up, a few times, keeping the ordering with the
fewest crossings), with nodes of one container kept together; then layers become rows of
boxes and edges become box-drawing lines between them. Back-edges run up a rail on the
right with a label; a Parallel, Loop, Condition or Router is drawn as its own node and as
a labelled frame around its children.

Pure functions and plain data: no Textual here, so the layout is tested on its own and
costs nothing until a workflow is shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BOX_H",
    "BOX_W",
    "Canvas",
    "GraphEdge",
    "GraphNode",
    "Layout",
    "Placed",
    "graph_from_object",
    "graph_from_paths",
    "layout_graph",
]

BOX_W = 24
"""Width of a node's box, borders included."""
BOX_H = 4
"""Height of a node's box: border, label, status, border."""
GAP_X = 3
"""Columns between boxes of one layer."""
GAP_Y = 3
"""Rows between layers: the stub, the horizontal run, the arrow."""
BOX_MAX_W = 44
"""Widest a box grows to fit its label (a longer one is cut, and shown whole below the
graph when the node is selected)."""
RAIL_W = 4
"""Columns kept on the right of a loop's body for the repeat's rail."""
CONTAINER_KINDS = frozenset({"parallel", "loop", "condition", "router"})
"""Kinds drawn as a frame around their children too."""


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A node of ``workflow.graph()``."""

    id: str
    """Its path (what ``workflow.step.*`` events name)."""
    label: str
    """What to print."""
    kind: str = "step"
    """step, condition, loop, parallel, router, function (start/end too)."""
    parent: str | None = None
    """The container it sits in."""
    target: str | None = None
    """For a step: what runs (``agent researcher``)."""


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """An edge of ``workflow.graph()``."""

    source: str
    """From."""
    target: str
    """To."""
    label: str = ""
    """``then``, ``else``, ``repeat`` ..."""
    back: bool = False
    """A loop's back-edge (found by search too when not marked)."""


def graph_from_object(graph: Any) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Read any object with ``.nodes`` (id, label, kind, parent) and ``.edges``
    (source, target, label); dicts work too."""

    def get(obj: Any, name: str, default: Any = None) -> Any:
        if isinstance(obj, dict):
            return obj.get(name, default)
        return getattr(obj, name, default)

    nodes = []
    for n in get(graph, "nodes", []):
        node_id = str(get(n, "id") or get(n, "path"))
        nodes.append(
            GraphNode(
                id=node_id,
                label=str(get(n, "label") or node_id.rsplit("/", 1)[-1]),
                kind=str(get(n, "kind") or "step"),
                parent=get(n, "parent"),
                target=get(n, "target"),
            )
        )
    edges = [
        GraphEdge(
            str(get(e, "source")),
            str(get(e, "target")),
            str(get(e, "label") or ""),
            bool(get(e, "back", False)),
        )
        for e in get(graph, "edges", [])
    ]
    return nodes, edges


def graph_from_paths(steps: Sequence[tuple[str, str]]) -> tuple[list[GraphNode], list[GraphEdge]]:
    """A graph guessed from the steps a run reported (``(path, kind)`` in start order),
    for sessions whose workflow definition is gone: containers from path prefixes, and
    siblings chained in the order they ran (children of a Parallel side by side)."""
    ids = [p for p, _ in steps]
    kinds = dict(steps)
    known = set(ids)

    def parent_of(path: str) -> str | None:
        head = path.rsplit("/", 1)[0] if "/" in path else None
        while head is not None and head not in known:
            head = head.rsplit("/", 1)[0] if "/" in head else None
        return head

    nodes = [GraphNode(p, p.rsplit("/", 1)[-1], kinds[p], parent_of(p)) for p in ids]
    edges: list[GraphEdge] = []
    children: dict[str | None, list[str]] = defaultdict(list)
    for n in nodes:
        children[n.parent].append(n.id)
    for parent, kids in children.items():
        pkind = kinds.get(parent or "", "")
        if parent is not None:
            firsts = kids if pkind == "parallel" else kids[:1]
            edges.extend(GraphEdge(parent, k) for k in firsts)
        if pkind != "parallel":
            edges.extend(GraphEdge(a, b) for a, b in zip(kids, kids[1:], strict=False))
    return nodes, edges


@dataclass(slots=True)
class Placed:
    """A node (or a dummy point of a long edge) on the canvas."""

    id: str
    """Node id ('' for a dummy)."""
    layer: int
    """Row of boxes."""
    order: int
    """Position within the layer."""
    x: int = 0
    """Left column."""
    y: int = 0
    """Top row."""
    w: int = BOX_W
    """Width (1 for a dummy)."""
    dummy: bool = False
    """A point an edge passes through."""

    @property
    def cx(self) -> int:
        """Centre column."""
        return self.x + self.w // 2


@dataclass(slots=True)
class Layout:
    """Where everything goes."""

    nodes: dict[str, GraphNode]
    """The graph's nodes."""
    placed: dict[str, Placed]
    """Real nodes by id."""
    layers: list[list[Placed]]
    """Every layer, dummies included, in order."""
    canvas: Canvas
    """The drawing (without node colours; see :meth:`Canvas.box`)."""
    back_edges: list[GraphEdge] = field(default_factory=list)
    """Edges drawn on the rail."""
    frames: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """Each container's frame around its children: (x0, y0, x1, y1), borders included."""

    def neighbour(self, node_id: str, dx: int, dy: int) -> str | None:
        """The node left/right in its layer or up/down nearest in column."""
        here = self.placed.get(node_id)
        if here is None:
            return None
        if dy:
            layer = here.layer + dy
            while 0 <= layer < len(self.layers):
                real = [p for p in self.layers[layer] if not p.dummy]
                if real:
                    return min(real, key=lambda p: (abs(p.cx - here.cx), p.order)).id
                layer += dy
            return None
        real = [p for p in self.layers[here.layer] if not p.dummy]
        i = real.index(here) + dx
        if 0 <= i < len(real):
            return real[i].id
        return None

    def first(self) -> str | None:
        """The top-left node."""
        for layer in self.layers:
            for p in layer:
                if not p.dummy:
                    return p.id
        return None


# -- the canvas ---------------------------------------------------------------------------

_UP, _DOWN, _LEFT, _RIGHT = 1, 2, 4, 8
_LINE_CHARS = {
    _UP | _DOWN: "│",
    _UP: "│",
    _DOWN: "│",
    _LEFT | _RIGHT: "─",
    _LEFT: "─",
    _RIGHT: "─",
    _DOWN | _RIGHT: "┌",
    _DOWN | _LEFT: "┐",
    _UP | _RIGHT: "└",
    _UP | _LEFT: "┘",
    _UP | _DOWN | _RIGHT: "├",
    _UP | _DOWN | _LEFT: "┤",
    _DOWN | _LEFT | _RIGHT: "┬",
    _UP | _LEFT | _RIGHT: "┴",
    _UP | _DOWN | _LEFT | _RIGHT: "┼",
}


class Canvas:
    """A grid of characters with a style name per cell."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.chars = [[" "] * width for _ in range(height)]
        self.styles: list[list[str]] = [[""] * width for _ in range(height)]
        self._bits: dict[tuple[int, int], int] = {}
        self.titles: list[tuple[int, int, int, str, str]] = []

    def put(self, x: int, y: int, text: str, style: str = "") -> None:
        """Write text from (x, y), clipped."""
        if not 0 <= y < self.height:
            return
        for i, ch in enumerate(text):
            if 0 <= x + i < self.width:
                self.chars[y][x + i] = ch
                self.styles[y][x + i] = style
                self._bits.pop((x + i, y), None)

    def line_bits(self, x: int, y: int, bits: int, style: str = "edge") -> None:
        """Merge line directions into a cell and draw the matching box character."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return
        merged = self._bits.get((x, y), 0) | bits
        self._bits[(x, y)] = merged
        self.chars[y][x] = _LINE_CHARS.get(merged, "┼")
        if not self.styles[y][x] or self.styles[y][x].startswith("group"):
            self.styles[y][x] = style

    def vline(self, x: int, y0: int, y1: int, style: str = "edge") -> None:
        """A vertical line from y0 to y1 (both ends joined to the next cells)."""
        lo, hi = min(y0, y1), max(y0, y1)
        for y in range(lo, hi + 1):
            bits = (_UP if y > lo else 0) | (_DOWN if y < hi else 0)
            self.line_bits(x, y, bits or (_UP | _DOWN), style)

    def hline(self, y: int, x0: int, x1: int, style: str = "edge") -> None:
        """A horizontal line from x0 to x1."""
        lo, hi = min(x0, x1), max(x0, x1)
        for x in range(lo, hi + 1):
            bits = (_LEFT if x > lo else 0) | (_RIGHT if x < hi else 0)
            self.line_bits(x, y, bits or (_LEFT | _RIGHT), style)

    def route(self, x0: int, y0: int, x1: int, y_mid: int, y1: int, style: str = "edge") -> None:
        """Down from (x0, y0) to the row y_mid, across to x1, down to (x1, y1)."""
        if x0 == x1:
            self.vline(x0, y0, y1, style)
            return
        self.vline(x0, y0, y_mid, style)
        self.hline(y_mid, x0, x1, style)
        self.vline(x1, y_mid, y1, style)
        # the corners: join the vertical and horizontal parts
        self.line_bits(x0, y_mid, _UP | (_RIGHT if x1 > x0 else _LEFT), style)
        self.line_bits(x1, y_mid, _DOWN | (_LEFT if x1 > x0 else _RIGHT), style)

    def frame(self, x0: int, y0: int, x1: int, y1: int, title: str, style: str) -> None:
        """A light dashed frame with a title (a container's children)."""
        for x in range(x0 + 1, x1):
            self.put(x, y0, "┄", style)
            self.put(x, y1, "┄", style)
        for y in range(y0 + 1, y1):
            self.put(x0, y, "┆", style)
            self.put(x1, y, "┆", style)
        self.put(x0, y0, "╭", style)
        self.put(x1, y0, "╮", style)
        self.put(x0, y1, "╰", style)
        self.put(x1, y1, "╯", style)
        if title and x1 - x0 > 6:
            self.titles.append((x0, x1, y1, title, style))

    def place_titles(self) -> None:
        """Write frame titles on their bottom borders (the top is where arrows come in),
        where no edge leaves: drawn last, in the widest free stretch of the border (cut
        with … when even that is short; the container's own box names it in full)."""
        for x0, x1, y, title, style in self.titles:
            best = (0, 0)  # start, length of the longest run of plain border
            x = x0 + 2
            while x < x1 - 1:
                if self.chars[y][x] != "┄":
                    x += 1
                    continue
                start = x
                while x < x1 - 1 and self.chars[y][x] == "┄":
                    x += 1
                if x - start > best[1]:
                    best = (start, x - start)
            room = best[1] - 2  # a space on each side
            if room < 6:
                continue
            text = title if len(title) <= room else title[: room - 1] + "…"
            self.put(best[0], y, f" {text} ", style)

    def box(
        self, p: Placed, title: str, line1: str, line2: str, style: str, selected: bool
    ) -> None:
        """A node's box: title in the top border, two lines inside."""
        x, y, w = p.x, p.y, p.w
        tl, tr, bl, br, h, v = (
            ("╔", "╗", "╚", "╝", "═", "║") if selected else ("┌", "┐", "└", "┘", "─", "│")
        )
        inner = w - 2
        top = title[: inner - 2]
        self.put(x, y, tl + h + top + h * (inner - 1 - len(top)) + tr, style)
        self.put(x, y + 1, v + " " + line1[: inner - 2].ljust(inner - 1) + v, style + "-label")
        self.put(x, y + 2, v + " " + line2[: inner - 2].ljust(inner - 1) + v, style)
        self.put(x, y + 3, bl + h * inner + br, style)


# -- the layout ---------------------------------------------------------------------------


def box_width(node: GraphNode) -> int:
    """Wide enough for the node's label, its title and a status line (``◐ running 1.2kt
    $0.01 12.3s ×3``), from :data:`BOX_W` to :data:`BOX_MAX_W`."""
    title = node.target or "" if node.kind == "step" else f"   {node.kind}"
    need = max(len(node.label), len(title), 22) + 4
    return max(BOX_W, min(BOX_MAX_W, need))


def _back_edges(ids: list[str], edges: list[GraphEdge]) -> set[int]:
    """Indexes of edges that close a cycle: those marked ``back``, and those an iterative
    depth-first search from the sources finds."""
    out: dict[str, list[int]] = defaultdict(list)
    indeg: dict[str, int] = dict.fromkeys(ids, 0)
    back: set[int] = {i for i, e in enumerate(edges) if e.back}
    for i, e in enumerate(edges):
        if i in back:
            continue
        out[e.source].append(i)
        indeg[e.target] = indeg.get(e.target, 0) + 1
    state: dict[str, int] = {}  # 1 on stack, 2 done
    roots = [n for n in ids if indeg.get(n, 0) == 0] + ids
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            if k < len(out[node]):
                stack[-1] = (node, k + 1)
                i = out[node][k]
                t = edges[i].target
                if state.get(t) == 1:
                    back.add(i)
                elif t not in state:
                    state[t] = 1
                    stack.append((t, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def _crossings(layers: list[list[Placed]], succ: dict[int, list[int]]) -> int:
    total = 0
    for layer, nxt in zip(layers, layers[1:], strict=False):
        pos = {id(p): i for i, p in enumerate(nxt)}
        pairs = []
        for i, p in enumerate(layer):
            for t in succ.get(id(p), []):
                if t in pos:
                    pairs.append((i, pos[t]))
        pairs.sort()
        for a in range(len(pairs)):
            for b in range(a + 1, len(pairs)):
                if pairs[a][0] < pairs[b][0] and pairs[a][1] > pairs[b][1]:
                    total += 1
    return total


def layout_graph(nodes: Iterable[GraphNode], edges: Iterable[GraphEdge], sweeps: int = 6) -> Layout:
    """Place the nodes in layers and route the edges.

    Args:
        nodes: The graph's nodes (their order is the tie-breaker).
        edges: Its edges; edges to unknown nodes are dropped.
        sweeps: Barycentre passes (each one down and one up).
    """
    node_map = {n.id: n for n in nodes}
    ids = list(node_map)
    edge_list = [
        e for e in edges if e.source in node_map and e.target in node_map and e.source != e.target
    ]
    back_idx = _back_edges(ids, edge_list)
    forward = [e for i, e in enumerate(edge_list) if i not in back_idx]
    back = [e for i, e in enumerate(edge_list) if i in back_idx]

    # Longest-path layering (Kahn's order).
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for e in forward:
        preds[e.target].append(e.source)
        succs[e.source].append(e.target)
    indeg = {n: len(preds[n]) for n in ids}
    ready = [n for n in ids if indeg[n] == 0]
    layer_of: dict[str, int] = {}
    topo: list[str] = []
    while ready:
        n = ready.pop(0)
        topo.append(n)
        layer_of[n] = max((layer_of[p] + 1 for p in preds[n]), default=0)
        for s in succs[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    for n in ids:  # anything left (should not happen after removing back-edges)
        layer_of.setdefault(n, 0)

    # Containers: a child sits below its container.
    for n in topo:
        parent = node_map[n].parent
        if parent in layer_of and layer_of[n] <= layer_of[parent]:
            layer_of[n] = layer_of[parent] + 1
            for s in succs[n]:
                layer_of[s] = max(layer_of[s], layer_of[n] + 1)
    # What follows a container comes after everything inside it; successors stay below.
    desc: dict[str, list[str]] = defaultdict(list)
    for n in ids:
        parent = node_map[n].parent
        while parent is not None and parent in node_map:
            desc[parent].append(n)
            parent = node_map[parent].parent
    inside = {c: set(d) for c, d in desc.items()}
    for _ in range(len(ids) + 1):
        moved = False
        for n in topo:
            floor = layer_of[n] + 1
            for s in succs[n]:
                need = floor
                if n in inside and s not in inside[n]:
                    need = max(need, max(layer_of[d] for d in desc[n]) + 1)
                if layer_of[s] < need:
                    layer_of[s] = need
                    moved = True
        if not moved:
            break

    n_layers = max(layer_of.values(), default=-1) + 1
    layers: list[list[Placed]] = [[] for _ in range(n_layers)]
    placed: dict[str, Placed] = {}
    wide = {n: box_width(node_map[n]) for n in ids}
    for e in forward:  # an edge's label sits right of the arrow, over the box it enters
        if e.label:
            wide[e.target] = max(wide[e.target], min(BOX_MAX_W, 2 * (len(e.label) + 3)))
    for n in topo + [n for n in ids if n not in topo]:
        p = Placed(n, layer_of[n], len(layers[layer_of[n]]), w=wide[n])
        layers[p.layer].append(p)
        placed[n] = p

    # A container's way out leaves from the bottom of its frame, after everything inside
    # it: an "exit" edge is drawn from there, never alongside the frame.
    frames = [c for c in desc if node_map[c].kind in CONTAINER_KINDS and desc[c]]
    last_layer = {c: max(layer_of[d] for d in desc[c]) for c in frames}

    def exits(e: GraphEdge) -> bool:
        return e.source in last_layer and e.target not in inside[e.source]

    # A loop's repeat stays inside the loop: it runs up a rail inside the frame's right
    # side, back to the first step of the body.
    inner_back: dict[str, GraphEdge] = {}
    outer_back: list[GraphEdge] = []
    for e in back:
        if e.target in last_layer and e.source in inside[e.target]:
            inner_back.setdefault(e.target, e)
        else:
            outer_back.append(e)

    # Long edges get dummies; succ/pred on Placed objects (by id()).
    succ_p: dict[int, list[int]] = defaultdict(list)
    pred_p: dict[int, list[int]] = defaultdict(list)
    chains: list[tuple[GraphEdge, list[Placed]]] = []
    for e in forward:
        a, b = placed[e.source], placed[e.target]
        start_layer = last_layer[e.source] + 1 if exits(e) else a.layer + 1
        chain = [a]
        for li in range(start_layer, b.layer):
            d = Placed("", li, len(layers[li]), w=1, dummy=True)
            layers[li].append(d)
            chain.append(d)
        chain.append(b)
        for u, v in zip(chain, chain[1:], strict=False):
            succ_p[id(u)].append(id(v))
            pred_p[id(v)].append(id(u))
        if exits(e):  # ordered below the container's last row
            for kid in desc[e.source]:
                if layer_of[kid] == last_layer[e.source]:
                    succ_p[id(placed[kid])].append(id(chain[1]))
                    pred_p[id(chain[1])].append(id(placed[kid]))
        chains.append((e, chain))

    # Barycentre ordering, containers kept together by a secondary key.
    def group_key(p: Placed) -> str:
        return node_map[p.id].parent or "" if not p.dummy else ""

    def sweep(down: bool) -> None:
        rng = range(1, n_layers) if down else range(n_layers - 2, -1, -1)
        for li in rng:
            ref = layers[li - 1] if down else layers[li + 1]
            pos = {id(p): i for i, p in enumerate(ref)}
            links = pred_p if down else succ_p
            layer = layers[li]

            bary: dict[int, float] = {}
            for i, p in enumerate(layer):
                ns = [pos[q] for q in links.get(id(p), []) if q in pos]
                bary[id(p)] = sum(ns) / len(ns) if ns else float(i)
            centre: dict[str, float] = {}
            for p in layer:
                g = group_key(p)
                if g:
                    centre.setdefault(g, bary[id(p)])
            layer.sort(key=lambda p: (centre.get(group_key(p), bary[id(p)]), bary[id(p)]))

    best = [list(layer) for layer in layers]
    best_cross = _crossings(layers, succ_p)
    for _ in range(sweeps):
        if best_cross == 0:
            break
        sweep(True)
        sweep(False)
        cross = _crossings(layers, succ_p)
        if cross < best_cross:
            best_cross = cross
            best = [list(layer) for layer in layers]
    layers = best
    for layer in layers:
        for i, p in enumerate(layer):
            p.order = i

    # Room: a step inside loops with a repeat keeps a rail's width on its right for each;
    # below a layer where frames close, a row for every frame closing there.
    def ancestors(n: str) -> list[str]:
        out, parent = [], node_map[n].parent
        while parent is not None and parent in node_map:
            out.append(parent)
            parent = node_map[parent].parent
        return out

    margin = {n: RAIL_W * sum(1 for c in ancestors(n) if c in inner_back) for n in ids}
    closing: dict[int, int] = defaultdict(int)
    depth_at_close: dict[str, int] = {}
    for c in sorted(frames, key=lambda c: len(ancestors(c)), reverse=True):
        nested = [k for k in frames if k in inside[c] and last_layer[k] == last_layer[c]]
        depth_at_close[c] = 1 + max((depth_at_close[k] for k in nested), default=0)
        closing[last_layer[c]] = max(closing[last_layer[c]], depth_at_close[c])

    # Coordinates: each layer centred.
    def span(p: Placed) -> int:
        return p.w + (0 if p.dummy else margin.get(p.id, 0))

    widths = [sum(span(p) for p in layer) + GAP_X * max(0, len(layer) - 1) for layer in layers]
    inner_w = max(widths, default=BOX_W)
    pad = 2
    rails = len(outer_back)
    width = inner_w + 2 * pad + (3 * rails + 8 if rails else 0)
    y = 1
    for li, layer in enumerate(layers):
        x = pad + (inner_w - widths[li]) // 2
        for p in layer:
            p.x = x
            p.y = y
            x += span(p) + GAP_X
        y += BOX_H + GAP_Y + max(0, closing.get(li, 0) - 1)
    height = y
    canvas = Canvas(max(width, BOX_W + 4), max(height, BOX_H + 2))

    # Container frames, innermost first (an outer frame encloses the inner ones).
    def rails_within(n: str, c: str) -> int:
        """Rail widths kept right of ``n`` for the loops between it and ``c`` (``c`` too)."""
        chain = ancestors(n)
        upto = chain[: chain.index(c) + 1] if c in chain else chain
        return RAIL_W * sum(1 for loop in upto if loop in inner_back)

    box_of: dict[str, tuple[int, int, int, int]] = {}
    for c in sorted(frames, key=lambda c: len(ancestors(c)), reverse=True):
        ps = [placed[k] for k in desc[c]]
        x0 = min(p.x for p in ps) - 1
        x1 = max(p.x + p.w + rails_within(p.id, c) for p in ps)
        y0 = min(p.y for p in ps) - 1
        y1 = max(p.y + BOX_H for p in ps)
        for k in frames:
            if k in inside[c] and k in box_of:
                kx0, _ky0, kx1, ky1 = box_of[k]
                x0, x1, y1 = min(x0, kx0 - 1), max(x1, kx1 + 1), max(y1, ky1 + 1)
        box_of[c] = (x0, y0, x1, y1)
    for c in sorted(frames, key=lambda c: len(ancestors(c))):  # inner borders drawn last
        x0, y0, x1, y1 = box_of[c]
        canvas.frame(x0, y0, x1, y1, f"{node_map[c].kind} {node_map[c].label}", "group")

    # Forward edges, segment by segment; a container's exit leaves its frame's bottom.
    for e, chain in chains:
        for i, (u, v) in enumerate(zip(chain, chain[1:], strict=False)):
            y_to = v.y - 1
            if i == 0 and exits(e):
                x0, _y0, x1, fy1 = box_of[e.source]
                fx = v.cx if x0 < v.cx < x1 else (x0 + x1) // 2
                canvas.put(fx, fy1, "┬", "group")
                canvas.route(fx, fy1 + 1, v.cx, fy1 + 1, y_to)
            else:
                y_from = u.y + BOX_H
                canvas.route(u.cx, y_from, v.cx, y_from + 1, y_to)
            if v.dummy:
                canvas.vline(v.cx, v.y - 1, v.y + BOX_H)
        last = chain[-1]
        canvas.put(last.cx, last.y - 1, "▼", "edge")
        if e.label:
            canvas.put(last.cx + 2, last.y - 1, e.label[: max(4, last.w - 2)], "edge-label")

    # A loop's repeat: up a rail inside its frame, into the first step of its body.
    for c, e in inner_back.items():
        x0, y0, x1, y1 = box_of[c]
        a = placed[e.source]
        body = [f.target for f in forward if f.source == c and f.target in inside[c]]
        b = placed[body[0]] if body else placed[e.source]
        rail = x1 - 2
        ya, yb = a.y + 2, b.y + 1
        canvas.hline(ya, a.x + a.w, rail)
        canvas.vline(rail, yb, ya)
        canvas.hline(yb, b.x + b.w, rail)
        canvas.line_bits(rail, ya, _UP | _LEFT)
        canvas.line_bits(rail, yb, _DOWN | _LEFT)
        canvas.put(b.x + b.w, yb, "◀", "edge")
        if ya - yb >= 2:  # the frame names the loop; the rail says it goes round
            canvas.put(rail - 1, (ya + yb) // 2, "↺", "edge-label")

    # Any other back-edge on rails at the right.
    rail0 = pad + inner_w + 3
    for i, e in enumerate(outer_back):
        a, b = placed[e.source], placed[e.target]
        rail = rail0 + 3 * i
        ya, yb = a.y + 2, b.y + 1
        canvas.hline(ya, a.x + a.w, rail)
        canvas.vline(rail, yb, ya)
        canvas.hline(yb, b.x + b.w, rail)
        canvas.line_bits(rail, ya, _UP | _LEFT)
        canvas.line_bits(rail, yb, _DOWN | _LEFT)
        canvas.put(b.x + b.w, yb, "◀", "edge")
        label = f"↺ {e.label or 'repeat'}"
        canvas.put(rail + 1, (ya + yb) // 2, label[: width - rail - 1], "edge-label")

    canvas.place_titles()
    return Layout(
        nodes=node_map,
        placed=placed,
        layers=layers,
        canvas=canvas,
        back_edges=back,
        frames=box_of,
    )
