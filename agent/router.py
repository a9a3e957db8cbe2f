"""The local router: a request becomes a Plan in four stages.

1. normalise (agent/normalise.py): tokens, typo fixes, instruction verbs;
2. classify: rule cues (agent/cues.py) plus a learned classifier (agent/classifier.py) give route and modality,
   and two hard rules act on rule-shaped phrasing: a conditional fallback is search_or_generate, and a negated
   generation or search rules that route out;
3. parameters (agent/params.py): count, size, duration, negative prompt, style, threshold;
4. query (agent/query.py): the subject left once instruction words are removed.
"""

from __future__ import annotations

from typing import Protocol

from agent.classifier import Model, default_model, request_features, vectorise
from agent.cues import Cues
from agent.params import extract_count, extract_params, threshold
from agent.plan import Modality, Plan, Route
from agent.query import extract_query

MAX_REQUEST_CHARS = 4000


class Router(Protocol):
    """Anything that turns a request into a Plan."""

    def plan(self, request: str) -> Plan:
        """Return the plan for request."""
        ...


def decide_route(predicted: Route, cues: Cues) -> tuple[Route, str | None]:
    """Apply the hard rules to the classifier's route; return the route and the rule's reason, if one applied."""
    if cues.no_generate and not cues.has_verb("generate"):
        if predicted != "search":
            return "search", f"generation is ruled out ('{cues.no_generate}'): search only"
        return predicted, None
    if cues.no_search and not cues.has_verb("search"):
        if predicted != "generate":
            return "generate", f"searching is ruled out ('{cues.no_search}'): generate"
        return predicted, None
    if cues.fallback:
        return "search_or_generate", f"conditional fallback '{cues.fallback}': search first, generate if nothing fits"
    return predicted, None


def decide_modality(predicted: Modality, route: Route) -> tuple[Modality, str | None]:
    """A generation needs a kind of media: one that names none makes an image."""
    if predicted == "any" and route == "generate":
        return "image", "generation names no kind of media: image"
    return predicted, None


class LocalRouter:
    """Deterministic, CPU-only router: learned route and modality, rule-based parameters and query."""

    def __init__(self, model: Model | None = None, max_chars: int = MAX_REQUEST_CHARS) -> None:
        self.model = model or default_model()
        self.max_chars = max_chars

    def plan(self, request: str) -> Plan:
        """Return the plan for request; raise ValueError when it is empty."""
        if not request or not request.strip():
            raise ValueError("request is empty: say what to find or generate, e.g. 'find photos of a red car'")
        text, reasons = request.strip(), []
        if len(text) > self.max_chars:
            # Long pastes are analysed by their head so routing stays fast.
            text = text[: self.max_chars]
            reasons.append(f"request truncated to {self.max_chars} characters for analysis")
        doc, cues, names = request_features(text)
        reasons += doc.corrections()
        idx, values = vectorise(names)
        route_p = self.model.route.probabilities(idx, values)
        predicted_route: Route = self.model.route.classes[int(route_p.argmax())]  # type: ignore[assignment]
        route, rule = decide_route(predicted_route, cues)
        evidence = ", ".join(self.model.route.evidence(names, idx, predicted_route))
        reasons.append(f"classifier: {predicted_route} (p={route_p.max():.2f}) from {evidence}")
        reasons.append(f"route {route}: {rule or 'as classified'}")
        modality_p = self.model.modality.probabilities(idx, values)
        predicted_modality: Modality = self.model.modality.classes[int(modality_p.argmax())]  # type: ignore[assignment]
        modality, modality_rule = decide_modality(predicted_modality, route)
        evidence = ", ".join(self.model.modality.evidence(names, idx, predicted_modality))
        reasons.append(
            f"modality {modality}: {modality_rule}" if modality_rule
            else f"modality {modality} (p={modality_p.max():.2f}) from {evidence}"
        )
        count, count_words = extract_count(doc.tokens)
        if count is not None:
            reasons.append(f"count {count} from '{count_words}'")
        found = extract_params(text)
        return Plan(
            route=route,
            modality=modality,
            count=count,
            # A request that was all parameters ("512x512, no people") keeps its own words as the query.
            query=extract_query(doc, route, modality) or " ".join(text.split()),
            params=found.params,
            threshold=threshold(text),
            reasons=reasons,
        )


_DEFAULT_ROUTER: LocalRouter | None = None


def route(request: str) -> Plan:
    """Return the plan for request using the default LocalRouter (built on first use)."""
    global _DEFAULT_ROUTER
    if _DEFAULT_ROUTER is None:
        _DEFAULT_ROUTER = LocalRouter()
    return _DEFAULT_ROUTER.plan(request)
