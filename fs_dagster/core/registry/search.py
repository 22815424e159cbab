"""Keyword search over feature groups and features.

SQL only narrows the candidates (a ``LIKE`` per query word on lower-cased ``search_text`` columns, which every
dialect runs the same way); matching and ranking happen here in Python, so the rules live in one place and do not
depend on the database's text-search features.

Rules:
    * The query is split into words (whitespace or commas), compared case-insensitively.
    * A feature-group hit must match every word in the group's name, description or tags.
    * A feature hit must match every word in the feature's name or description or in its group's fields, and at
      least one word in the feature itself (otherwise every feature of a matching group would be a hit).
    * Score per word is its best match: name > tag > description, and within a field an exact word beats a
      substring. Words matched only through the group count half for a feature hit. A name equal to the whole
      query gets a bonus, so ``weather`` ranks the group ``weather`` above ``weather_hourly``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from fs_dagster.core.registry.models import FeatureGroupRow, FeatureRow

# Field priority dominates exactness: a substring of a name still beats an exact tag (name > tag > description).
WEIGHTS: dict[tuple[str, bool], float] = {
    ("name", True): 12.0,
    ("name", False): 8.0,
    ("tag", True): 6.0,
    ("tag", False): 4.0,
    ("description", True): 2.0,
    ("description", False): 1.0,
}
WHOLE_NAME_BONUS = 4.0
GROUP_CONTEXT_FACTOR = 0.5
_FIELD_ORDER = ("name", "tag", "description")
_QUERY_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class SearchHit:
    """One search result.

    Args:
        kind: ``"feature_group"`` or ``"feature"``.
        feature_group: the feature group's name.
        version: the feature group's version (every registered version is searched).
        feature: the feature's name when ``kind == "feature"``, else None.
        matched_in: the hit's own fields that matched a query word, among ``"name"``, ``"tag"``,
            ``"description"`` (a feature has no tags; words it matched only through its group are not listed).
        score: higher is better; see the module docstring for the rules.
        description: the group's or the feature's description.

    Example:
        >>> hits = registry.search("flights", "hourly weather")  # doctest: +SKIP
        >>> hits[0].feature_group, hits[0].matched_in  # doctest: +SKIP
        ('weather_hourly', ('name', 'description'))
    """

    kind: str
    feature_group: str
    version: int
    feature: str | None
    matched_in: tuple[str, ...]
    score: float
    description: str


def query_words(text: str) -> list[str]:
    """Lower-cased, de-duplicated words of a query, in order."""
    words: list[str] = []
    for word in _QUERY_SPLIT.split(text.lower()):
        word = word.strip("\"'")
        if word and word not in words:
            words.append(word)
    return words


def group_search_text(name: str, description: str, tags: Iterable[str]) -> str:
    """The lower-cased text a group's SQL prefilter matches against."""
    return " ".join([name, description, *tags]).lower()


def feature_search_text(name: str, description: str) -> str:
    """The lower-cased text a feature's SQL prefilter matches against."""
    return f"{name} {description}".lower()


def _tokens(value: str) -> set[str]:
    # Both with and without splitting at "_": "temp" is an exact word of "temp_c", and so is "temp_c" itself.
    value = value.lower()
    tokens = set(re.split(r"[^\w]+", value)) | set(re.split(r"[^a-z0-9]+", value)) | {value}
    tokens.discard("")
    return tokens


def _match(word: str, value: str) -> bool | None:
    """True for an exact-word match, False for a substring match, None for no match."""
    if not value or word not in value.lower():
        return None
    return word in _tokens(value)


def _word_scores(word: str, name: str, description: str, tags: Sequence[str]) -> dict[str, float]:
    """Best score of ``word`` in each field that contains it."""
    scores: dict[str, float] = {}
    exact = _match(word, name)
    if exact is not None:
        scores["name"] = WEIGHTS[("name", exact)]
    for tag in tags:
        exact = _match(word, tag)
        if exact is not None:
            scores["tag"] = max(scores.get("tag", 0.0), WEIGHTS[("tag", exact)])
    exact = _match(word, description)
    if exact is not None:
        scores["description"] = WEIGHTS[("description", exact)]
    return scores


def _ordered(fields: set[str]) -> tuple[str, ...]:
    return tuple(f for f in _FIELD_ORDER if f in fields)


def _score_group(words: list[str], row: FeatureGroupRow) -> SearchHit | None:
    total = 0.0
    fields: set[str] = set()
    for word in words:
        scores = _word_scores(word, row.name, row.description, row.tags or ())
        if not scores:
            return None
        total += max(scores.values())
        fields.update(scores)
    if row.name.lower() == " ".join(words):
        total += WHOLE_NAME_BONUS
    return SearchHit("feature_group", row.name, row.version, None, _ordered(fields), total, row.description)


def _score_feature(words: list[str], group: FeatureGroupRow, feature: FeatureRow) -> SearchHit | None:
    total, own = 0.0, False
    fields: set[str] = set()
    for word in words:
        scores = _word_scores(word, feature.name, feature.description, ())
        if scores:
            own = True
            total += max(scores.values())
            fields.update(scores)
            continue
        scores = _word_scores(word, group.name, group.description, group.tags or ())
        if not scores:
            return None
        total += GROUP_CONTEXT_FACTOR * max(scores.values())  # context only: not in matched_in
    if not own:
        return None
    if feature.name.lower() == " ".join(words):
        total += WHOLE_NAME_BONUS
    return SearchHit("feature", group.name, group.version, feature.name, _ordered(fields), total, feature.description)


def _word_condition(word: str) -> ColumnElement[bool]:
    # autoescape makes "%" and "_" in the query literal; search_text is stored lower-cased, so plain LIKE is
    # case-insensitive on SQLite and PostgreSQL alike.
    in_feature = exists().where(
        FeatureRow.fg_id == FeatureGroupRow.id, FeatureRow.search_text.contains(word, autoescape=True)
    )
    return or_(FeatureGroupRow.search_text.contains(word, autoescape=True), in_feature)


def search(session: Session, project: str, text: str, limit: int = 50) -> list[SearchHit]:
    """Ranked hits for ``text`` among the feature groups of ``project`` (best first, at most ``limit``).

    An empty query (no words) returns no hits.
    """
    words = query_words(text)
    if not words or limit <= 0:
        return []
    # Every word must appear in the group or in one of its features: a superset of both kinds of hits.
    stmt = (
        select(FeatureGroupRow)
        .where(FeatureGroupRow.project == project, *(_word_condition(w) for w in words))
        .options(selectinload(FeatureGroupRow.features))
    )
    hits: list[tuple[SearchHit, int]] = []
    for group in session.scalars(stmt):
        group_hit = _score_group(words, group)
        if group_hit is not None:
            hits.append((group_hit, -1))
        for feature in group.features:
            feature_hit = _score_feature(words, group, feature)
            if feature_hit is not None:
                hits.append((feature_hit, feature.position))
    hits.sort(key=lambda h: (-h[0].score, h[0].kind != "feature_group", h[0].feature_group, -h[0].version, h[1]))
    return [hit for hit, _ in hits[:limit]]
