"""Scoring a router on labelled requests: accuracy per label, per class, and confusion tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.corpus import MODALITIES, ROUTES, Example
from agent.plan import Plan


@dataclass(slots=True)
class Report:
    """Gold and predicted labels for a set of requests, with the misses kept for display."""

    total: int = 0
    route_and_modality: int = 0
    route: Counter[tuple[str, str]] = field(default_factory=Counter)  # (gold, predicted) -> n
    modality: Counter[tuple[str, str]] = field(default_factory=Counter)
    counts_labelled: int = 0
    counts_right: int = 0
    misses: list[tuple[Example, Plan]] = field(default_factory=list)

    def add(self, example: Example, plan: Plan) -> None:
        """Record one prediction."""
        self.total += 1
        self.route[(example.route, plan.route)] += 1
        self.modality[(example.modality, plan.modality)] += 1
        if (example.route, example.modality) == (plan.route, plan.modality):
            self.route_and_modality += 1
        else:
            self.misses.append((example, plan))
        if example.count is not None:
            self.counts_labelled += 1
            self.counts_right += int(plan.count == example.count)

    def accuracy(self) -> float:
        """Share of requests whose route and modality are both right."""
        return self.route_and_modality / self.total if self.total else 0.0

    def class_accuracy(self, which: str) -> dict[str, float]:
        """Recall per gold class of 'route' or 'modality' (classes absent from the gold labels are left out)."""
        table: Counter[tuple[str, str]] = getattr(self, which)
        gold: Counter[str] = Counter()
        for (g, _), n in table.items():
            gold[g] += n
        return {g: table[(g, g)] / n for g, n in gold.items()}

    def confusion_rate(self, which: str, gold: str, predicted: str) -> float:
        """Share of requests labelled gold that were predicted as predicted."""
        table: Counter[tuple[str, str]] = getattr(self, which)
        n = sum(v for (g, _), v in table.items() if g == gold)
        return table[(gold, predicted)] / n if n else 0.0


def evaluate(plans: Iterable[tuple[Example, Plan]]) -> Report:
    """Score (labelled example, plan) pairs."""
    report = Report()
    for example, plan in plans:
        report.add(example, plan)
    return report


def _table(title: str, table: Counter[tuple[str, str]], classes: Sequence[str]) -> list[str]:
    width = max(len(c) for c in classes) + 2
    lines = [f"{title} (rows: labelled, columns: planned)", " " * width + "".join(f"{c:>{width}}" for c in classes)]
    lines += [f"{g:<{width}}" + "".join(f"{table[(g, p)]:>{width}}" for p in classes) for g in classes]
    return lines


def render(report: Report, misses: int = 20) -> str:
    """The report as text: accuracies, per-class recall, both confusion tables and the first misses."""
    lines = [f"requests: {report.total}", f"route+modality accuracy: {report.accuracy():.3f}"]
    for which in ("route", "modality"):
        right = sum(n for (g, p), n in getattr(report, which).items() if g == p)
        per_class = ", ".join(f"{c} {a:.3f}" for c, a in sorted(report.class_accuracy(which).items()))
        lines.append(f"{which} accuracy: {right / max(report.total, 1):.3f} ({per_class})")
    if report.counts_labelled:
        lines.append(f"count accuracy: {report.counts_right / report.counts_labelled:.3f} of {report.counts_labelled}")
    lines += ["", *_table("route", report.route, ROUTES), "", *_table("modality", report.modality, MODALITIES)]
    if report.misses:
        lines += ["", f"misses ({len(report.misses)}):"]
        lines += [
            f"  {e.route}/{e.modality} planned {p.route}/{p.modality}: {e.request}" for e, p in report.misses[:misses]
        ]
    return "\n".join(lines)
