"""A journey definition as a flow diagram: pure layout (no I/O) of the steps in rows by their distance from the start
(the longest path, so every arrow points down), the arrows between them with what leads along each (branch, arm,
event, timeout), and each step's one-line summary. The template draws it as server-rendered SVG, each step a link
to its form (reachable with the keyboard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retento.console.i18n import N_

WIDTH, HEIGHT, GAP_X, GAP_Y, MARGIN = 240, 96, 28, 72, 16
TYPES = {"send": N_("Send"), "wait": N_("Wait"), "wait_event": N_("Wait for an event"), "branch": N_("Branch"),
         "split": N_("A/B split"), "add_tag": N_("Add a tag"), "remove_tag": N_("Remove a tag"),
         "credit_points": N_("Credit points"), "create_task": N_("Create a task"), "webhook": N_("Call a webhook"),
         "exit": N_("Exit")}
EVENTS = {"opened": N_("opened"), "read": N_("read"), "clicked": N_("clicked"), "ordered": N_("ordered"),
          "email_confirmed": N_("confirmed the email"), "custom": N_("custom event"),
          "delivered": N_("delivered")}


@dataclass
class Node:
    id: str
    type: str
    label: str
    x: int = 0
    y: int = 0
    row: int = 0
    step: dict[str, Any] = field(default_factory=dict)


@dataclass
class Edge:
    source: str
    target: str
    label: str  # user data (an arm's name, an interest) or a word to translate, see `translated`
    translated: bool
    path: str = ""
    lx: int = 0
    ly: int = 0


@dataclass
class Diagram:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_width: int = WIDTH
    node_height: int = HEIGHT


def edges_of(step: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Where a step leads: (target step id, what leads there, whether that is a word to translate)."""
    kind = step["type"]
    if kind == "exit":
        return []
    if kind == "branch":
        out = []
        for b in step.get("branches", []):
            if "interest" in b:
                out.append((b["next"], b["interest"], False))
            elif "engaged" in b:
                out.append((b["next"], EVENTS.get(b["engaged"].get("did", "opened"), ""), True))
            else:
                out.append((b["next"], N_("condition"), True))
        if step.get("else"):
            out.append((step["else"], N_("else"), True))
        return out
    if kind == "split":
        return [(a["next"], f"{a['name']} {a['share']}%", False) for a in step.get("arms", [])]
    if kind == "wait_event":
        out = []
        for key, word in (("on_event", EVENTS.get(step.get("event", ""), "")), ("on_timeout", N_("timeout"))):
            target = step.get(key) or step.get("next")
            if target:
                out.append((target, word, True))
        return out
    return [(step["next"], "", False)] if step.get("next") else []


def layout(definition: dict[str, Any]) -> Diagram:
    steps = definition.get("steps", [])
    by_id = {s["id"]: s for s in steps}
    start = definition.get("start") or (steps[0]["id"] if steps else None)
    row: dict[str, int] = {}
    if start in by_id:  # longest distance from the start; definitions are checked to have no circles
        row[start] = 0
        order = [start]
        for _ in range(len(steps)):
            changed = False
            for sid in list(order):
                for target, _, _ in edges_of(by_id[sid]):
                    if target in by_id and row.get(target, -1) < row[sid] + 1 <= len(steps):
                        row[target] = row[sid] + 1
                        if target not in order:
                            order.append(target)
                        changed = True
            if not changed:
                break
    last = max(row.values(), default=-1)
    for s in steps:  # unreachable steps (a saved definition has none) go below the rest
        if s["id"] not in row:
            last += 1
            row[s["id"]] = last
    rows: dict[int, list[str]] = {}
    for s in steps:
        rows.setdefault(row[s["id"]], []).append(s["id"])
    widest = max((len(r) for r in rows.values()), default=1)
    width = MARGIN * 2 + widest * WIDTH + (widest - 1) * GAP_X
    nodes: dict[str, Node] = {}
    for r, ids in sorted(rows.items()):
        span = len(ids) * WIDTH + (len(ids) - 1) * GAP_X
        left = (width - span) // 2
        for i, sid in enumerate(ids):
            s = by_id[sid]
            nodes[sid] = Node(id=sid, type=s["type"], label=s.get("label") or sid, step=s, row=r,
                              x=left + i * (WIDTH + GAP_X), y=MARGIN + r * (HEIGHT + GAP_Y))
    edges = []
    for s in steps:
        targets = edges_of(s)
        for n, (target, label, translated) in enumerate(targets):
            if target not in nodes:
                continue
            a, b = nodes[s["id"]], nodes[target]
            x1 = a.x + WIDTH * (n + 1) // (len(targets) + 1)
            y1 = a.y + HEIGHT
            x2, y2 = b.x + WIDTH // 2, b.y
            mid = (y1 + y2) // 2
            # the label sits on the curve, the labels of one step's arrows at different heights
            t = (n + 1) / (len(targets) + 1)
            near, far = (1 - t) ** 3 + 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2 + t ** 3
            edges.append(Edge(source=s["id"], target=target, label=label, translated=translated,
                              path=f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2 - 2}",
                              lx=round(x1 * near + x2 * far), ly=round(y1 + (y2 - y1) * (1.5 * t * (1 - t) + t ** 3)) + 4))
    height = MARGIN * 2 + (max(rows, default=0) + 1) * (HEIGHT + GAP_Y) - GAP_Y
    return Diagram(nodes=[nodes[s["id"]] for s in steps], edges=edges, width=width, height=height)
