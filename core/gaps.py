"""Knowledge gaps: escalated and uncertain messages clustered by meaning, for an admin to turn
into a new intent, map to an existing one, or dismiss.

Candidates are the shop's waiting messages (pending, not reviewed) that were escalated or that
the model was unsure of (confidence below the shop's review threshold, or no prediction), minus
those of gaps already dismissed or resolved: the newest MAX_MESSAGES of them.

Clustering: word 1-2-grams + character 3-5-grams (tf-idf, sublinear, unit length), average-
linkage hierarchical clustering on cosine distance cut at DISTANCE_THRESHOLD; groups of
MIN_GAP_SIZE or more are gaps. Deterministic (no random step). It runs scipy's linkage, which
is what sklearn's AgglomerativeClustering runs for average linkage, on a condensed distance
matrix filled in blocks: AgglomerativeClustering needs the square matrix for precomputed
distances (200 MB more at 5,000 messages), and its own cosine path needs dense vectors.

Measured on BANKING77: 10 intents held out as the "gaps" (6 messages each at 150 messages,
20 at 500, 35 above) among messages of the other 67, 3 draws per size. "share" is how much of a
held-out intent lands in its best cluster, "purity" how much of that cluster is that intent:

    messages                      150        500        2,000      5,000
    exact cosine, cut 0.70        .38/.96    .23/.95    .21/.88    .20/.82   (share/purity)
    exact cosine, cut 0.75        .43/.94    .27/.94    .25/.79    .23/.74
    exact cosine, cut 0.80        .52/.91    .40/.90    .34/.74    .32/.64
    TruncatedSVD 100, cut 0.45    .31/.97    .25/.96    .35/.84    .33/.70
    TruncatedSVD 100, cut 0.60    .39/.96    .39/.90    .53/.71    .49/.43

Why not the SVD (LSA) space: its distances shrink as the messages outnumber its 100 dimensions,
so no one threshold serves both a small shop and a busy one. Cut at 0.45 it keeps 22 of 30
messages of three tightly worded repeated questions (among 15 unrelated ones), in four
clusters; cut at 0.6 its clusters at 5,000 messages are under half pure. Plain tf-idf cosine
means the same at every size, and gives up some grouping at thousands of messages for that.
0.70 keeps clusters at least 82 % pure at every size (an admin relabels a whole cluster at
once, so purity comes first), and groups those three questions whole, and nothing else,
anywhere from 0.65 to 0.75.

Cost at 5,000 messages, through find_gaps on SQLite: about 4.5 s of CPU (features and label
phrases 0.4 s, pairwise distances 1.1 s, the tree 0.5 s, labels and representatives 0.3 s,
nearest intents 0.4-0.8 s, the rest reading and writing rows); 8-15 s wall on a 2-core machine
busy with other work. Memory peaks ~200 MB above the process: the condensed matrix (100 MB)
and scipy's working copy. Both grow with the square of the messages, hence MAX_MESSAGES.

Severity is the expected number of messages the assistant failed in the cluster: an escalated
message counts 1 (a person had to step in), any other 1 - confidence (confidences are
calibrated, so that is the chance the intent was wrong; no prediction counts 1).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    strip_accents_unicode,
)
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import normalize
from sqlalchemy import delete, text
from sqlmodel import Session, col, select

from core import audit, registry
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, NotFound
from core.model import char_tfidf, word_tfidf
from core.review import bulk_relabel
from core.shop_settings import review_thresholds
from core.text import normalize_text
from db.engine import is_postgres
from db.models import Example, ExampleStatus, GapStatus, KnowledgeGap, utcnow

MAX_MESSAGES = 5_000  # newest candidates clustered per run (bounds time and memory, see above)
MIN_GAP_SIZE = 3
DISTANCE_THRESHOLD = 0.7  # cosine distance, average linkage (see above)
DISTANCE_BLOCK = 512  # rows of the similarity matrix computed at a time
REPRESENTATIVES = 5
NEAREST_INTENTS = 3
LABEL_TERMS = 3
LABEL_TOKEN = re.compile(r"\b[^\W\d_]{2,}\b")  # words of two letters or more
# Function words, greetings and contraction tails never label a gap; sklearn's English list
# keeps words that carry a request ("same day", "call back", "next week").
LABEL_STOP_WORDS = frozenset(
    ENGLISH_STOP_WORDS
    - {"same", "back", "call", "bill", "first", "last", "next", "full", "empty", "fire", "find"}
    - {"get", "give", "put", "show", "take", "move", "found", "top", "part", "front", "side"}
    | {"hi", "hello", "hey", "hiya", "thanks", "thank", "thx", "please", "regards", "cheers"}
    | {"ll", "ve", "re", "don", "didn", "doesn", "isn", "wasn", "won", "haven", "hasn"}
)
LABEL_MIN_SHARE = 0.3  # a term fewer members use does not describe the cluster
LABELLED_SAMPLE = 10_000  # newest labelled examples behind the intent centroids (no model)
# pg_advisory_xact_lock(GAPS_LOCK, shop): one recompute, dismiss or resolve at a time per shop.
GAPS_LOCK = 0x67617073

Vectors = NDArray[np.float64]


@dataclass(frozen=True)
class GapView:
    """A knowledge gap as pages and the CLI see it."""

    id: int
    status: str
    label: str
    size: int
    escalation_rate: float
    avg_confidence: float | None
    severity: float
    representatives: tuple[str, ...]
    nearest_intents: tuple[tuple[str, float], ...]
    example_ids: tuple[int, ...]
    created_at: datetime
    resolution: str | None


@dataclass(frozen=True)
class _Candidate:
    id: int
    text: str
    escalated: bool
    confidence: float | None

    @property
    def failure(self) -> float:
        """How surely the assistant failed this message (see the module's severity)."""
        if self.escalated or self.confidence is None:
            return 1.0
        return 1.0 - self.confidence


@dataclass(frozen=True)
class _Space:
    """Candidates as unit tf-idf rows, and what turns other texts into the same rows."""

    features: FeatureUnion
    rows: Any  # sparse, one unit row per candidate (all zero for a text with no features)
    words: Any  # which candidate uses which phrase (sparse 0/1), for labels
    terms: list[str]  # the columns of `words`

    def embed(self, texts: Sequence[str]) -> Any:
        return normalize(self.features.transform(list(texts)))

    def mean(self, group: Sequence[int]) -> Vectors:
        """The mean of the group's rows: its direction is the cluster's centre."""
        return np.asarray(self.rows[list(group)].mean(axis=0), dtype=np.float64).ravel()


# --- finding --------------------------------------------------------------------------------


def find_gaps(*, session: Session, actor: Actor) -> list[GapView]:
    """Cluster the shop's escalated and uncertain messages into gaps, replacing the open gaps
    (dismissed and resolved ones stay as history); most severe first (admin; audited)."""
    require_role(actor, Role.ADMIN)
    _lock(session, actor)
    candidates = _candidates(session, actor)
    clusters = _cluster(session, actor, candidates)
    replaced = session.exec(
        delete(KnowledgeGap).where(
            col(KnowledgeGap.tenant_id) == actor.tenant_id,
            col(KnowledgeGap.status) == GapStatus.OPEN.value,
        )
    ).rowcount
    rows = [_gap_row(actor, members) for members in clusters]
    session.add_all(rows)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="gaps.find",
        entity_type="knowledge_gap",
        before={"open": replaced},
        after={
            "gaps": len(rows),
            "messages": len(candidates),
            "clustered": sum(row.size for row in rows),
        },
    )
    return sorted((_view(row) for row in rows), key=_most_severe)


def _lock(session: Session, actor: Actor) -> None:
    """Serialize gap changes per shop on PostgreSQL (SQLite serializes every write anyway):
    two recomputes at once would both replace the open gaps and leave two sets."""
    if is_postgres(session.connection()):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:kind, :shop)"),
            {"kind": GAPS_LOCK, "shop": actor.tenant_id},
        )


def _candidates(session: Session, actor: Actor) -> list[_Candidate]:
    """The newest MAX_MESSAGES waiting escalated/uncertain messages not in a closed gap."""
    closed = _closed_gap_examples(session, actor)
    limits = review_thresholds(session=session, actor=actor)
    confidence = col(Example.confidence)
    rows = session.exec(
        select(Example.id, Example.text, Example.escalated, Example.confidence)
        .where(
            col(Example.tenant_id) == actor.tenant_id,
            col(Example.status) == ExampleStatus.PENDING.value,
            ~col(Example.reviewed),
            col(Example.escalated) | confidence.is_(None) | (confidence < limits.confidence),
        )
        .order_by(col(Example.created_at).desc(), col(Example.id).desc())
        .execution_options(yield_per=1_000)
    )
    found: list[_Candidate] = []
    # Closed gaps' ids are skipped here rather than in SQL: the list only grows, and a NOT IN
    # of tens of thousands of ids is slower than reading past them.
    try:
        for example_id, body, escalated, conf in rows:
            if example_id is None or example_id in closed:
                continue
            found.append(_Candidate(int(example_id), body, bool(escalated), conf))
            if len(found) == MAX_MESSAGES:
                break
    finally:
        rows.close()  # stop the streaming cursor when the limit cut the reading short
    return found


def _closed_gap_examples(session: Session, actor: Actor) -> set[int]:
    lists = session.exec(
        select(KnowledgeGap.example_ids).where(
            col(KnowledgeGap.tenant_id) == actor.tenant_id,
            col(KnowledgeGap.status) != GapStatus.OPEN.value,
        )
    ).all()
    return {int(i) for ids in lists for i in ids}


# --- clustering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cluster:
    members: list[_Candidate]
    label: str
    representatives: list[str]
    nearest_intents: list[list[Any]]


def build_features() -> FeatureUnion:
    """Word 1-2-grams and character 3-5-grams, tf-idf: what the messages are compared on."""
    words, chars = word_tfidf(dtype=np.float32), char_tfidf(dtype=np.float32)
    return FeatureUnion([("words", words), ("chars", chars)])


def cluster_texts(texts: Sequence[str]) -> list[list[int]]:
    """Groups of at least MIN_GAP_SIZE texts that mean the same, as indices into `texts`."""
    space = _embed(texts)
    return [] if space is None else _groups(space.rows)


def _embed(texts: Sequence[str]) -> _Space | None:
    if len(texts) < MIN_GAP_SIZE:
        return None
    features = build_features()
    try:
        rows = normalize(features.fit_transform(list(texts))).tocsr()
    except ValueError:  # no word, or no character 3-gram in two texts: nothing in common
        return None
    return _Space(features, rows, *_vocabulary(texts))


def _vocabulary(texts: Sequence[str]) -> tuple[Any, list[str]]:
    """Which text uses which phrase (see _phrases)."""
    counter = CountVectorizer(analyzer=_phrases, binary=True)
    try:
        used = counter.fit_transform(list(texts)).tocsr()
    except ValueError:  # not one word of letters
        return None, []
    return used, [str(t) for t in counter.get_feature_names_out()]


def _phrases(text: str) -> list[str]:
    """Runs of 1-3 adjacent words that neither start nor end with a function word ('same day
    delivery', 'delivery charge'; never 'before the'); letters only, as '11' tells nothing."""
    words = LABEL_TOKEN.findall(strip_accents_unicode(text.lower()))
    return [
        " ".join(words[start : start + size])
        for size in (1, 2, 3)
        for start in range(len(words) - size + 1)
        if words[start] not in LABEL_STOP_WORDS and words[start + size - 1] not in LABEL_STOP_WORDS
    ]


def _groups(rows: Any) -> list[list[int]]:
    """Average-linkage clusters cut at DISTANCE_THRESHOLD, of MIN_GAP_SIZE texts or more."""
    tree = linkage(_distances(rows), method="average")
    clusters = fcluster(tree, t=DISTANCE_THRESHOLD, criterion="distance")
    groups: defaultdict[int, list[int]] = defaultdict(list)
    for index, cluster in enumerate(clusters):
        groups[int(cluster)].append(index)
    return [members for members in groups.values() if len(members) >= MIN_GAP_SIZE]


def _distances(rows: Any) -> Vectors:
    """Condensed cosine distances of unit rows (the order scipy's linkage reads), computed a
    block of rows at a time so the square matrix never exists. A text with no features is at
    distance 1 from everything, so it joins nothing."""
    n = rows.shape[0]
    condensed = np.empty(n * (n - 1) // 2, dtype=np.float64)
    columns = rows.T.tocsr()
    position = 0
    for start in range(0, n, DISTANCE_BLOCK):
        similarity = (rows[start : start + DISTANCE_BLOCK] @ columns).toarray()
        for offset, line in enumerate(similarity):
            after = line[start + offset + 1 :]
            condensed[position : position + after.size] = after
            position += after.size
    np.subtract(1.0, condensed, out=condensed)
    return np.clip(condensed, 0.0, 2.0, out=condensed)


def _cluster(session: Session, actor: Actor, candidates: list[_Candidate]) -> list[_Cluster]:
    """The candidates' clusters with their labels, representatives and nearest intents."""
    space = _embed([c.text for c in candidates])
    if space is None:
        return []
    groups = _groups(space.rows)
    if not groups:
        return []
    means = [space.mean(group) for group in groups]
    nearest = _nearest_intents(session, actor, candidates, space, groups, means)
    return [
        _Cluster(
            members=[candidates[i] for i in group],
            label=_label(space, group),
            representatives=_representatives(candidates, space, group, mean),
            nearest_intents=near,
        )
        for group, mean, near in zip(groups, means, nearest, strict=True)
    ]


def _label(space: _Space, group: Sequence[int]) -> str:
    """The cluster's most telling phrases: used by many members and few other messages (share
    inside minus share outside), rare overall (times idf), and by LABEL_MIN_SHARE of the members
    at least. English function words never count. A phrase comes before its own words."""
    if space.words is None:
        return ""
    inside = np.zeros(space.words.shape[0], dtype=bool)
    inside[list(group)] = True
    within = np.asarray(space.words[inside].sum(axis=0), dtype=np.float64).ravel()
    overall = np.asarray(space.words.sum(axis=0), dtype=np.float64).ravel()
    share = within / inside.sum()
    contrast = share - (overall - within) / max(int((~inside).sum()), 1)
    telling = (contrast > 0) & (share >= LABEL_MIN_SHARE)
    score = np.where(telling, contrast * (np.log((1 + inside.size) / (1 + overall)) + 1), 0)
    chosen: list[str] = []
    used: set[str] = set()
    for column in sorted(np.flatnonzero(score), key=lambda c: _rank(space.terms, score, int(c))):
        words = space.terms[column].split()
        if used.isdisjoint(words):
            chosen.append(space.terms[column])
            used.update(words)
        if len(chosen) == LABEL_TERMS:
            break
    return ", ".join(chosen)[:200]


def _rank(terms: Sequence[str], score: Vectors, column: int) -> tuple[float, int, str]:
    return (-round(float(score[column]), 9), -len(terms[column].split()), terms[column])


def _representatives(
    candidates: Sequence[_Candidate], space: _Space, group: Sequence[int], mean: Vectors
) -> list[str]:
    """Up to REPRESENTATIVES different texts closest to the cluster's centre."""
    closeness = np.asarray(space.rows[list(group)] @ mean).ravel()
    texts: dict[str, str] = {}
    for position in np.argsort(-closeness, kind="stable"):
        body = candidates[group[int(position)]].text
        texts.setdefault(normalize_text(body), body)
        if len(texts) == REPRESENTATIVES:
            break
    return list(texts.values())


def _nearest_intents(
    session: Session,
    actor: Actor,
    candidates: Sequence[_Candidate],
    space: _Space,
    groups: list[list[int]],
    means: list[Vectors],
) -> list[list[list[Any]]]:
    """Per group, the top intents: the serving model's mean probabilities over the members,
    or without a model the cosine of the group's centre to each labelled intent's centre."""
    loaded = registry.serving_model(session=session, actor=actor)
    if loaded is not None:
        _, model = loaded
        members = [i for group in groups for i in group]
        proba = model.probabilities([candidates[i].text for i in members])
        row = {index: proba[n] for n, index in enumerate(members)}
        return [_top(model.intents, np.mean([row[i] for i in g], axis=0)) for g in groups]
    names, centres = _intent_centres(session, actor, space)
    if not names:
        return [[] for _ in groups]
    # centre . intent = mean(rows . intent) / |mean|: one sparse product for every message
    # instead of a dense one per cluster (7 s less at 5,000 messages and 77 intents).
    per_text = np.asarray(space.rows @ centres.T, dtype=np.float64)
    # (np.sqrt of a sum, not np.linalg.norm: 550 threaded BLAS calls stall on a busy machine)
    norms = [max(float(np.sqrt(np.square(mean).sum())), 1e-12) for mean in means]
    return [
        _top(names, per_text[g].mean(axis=0) / norm) for g, norm in zip(groups, norms, strict=True)
    ]


def _intent_centres(session: Session, actor: Actor, space: _Space) -> tuple[list[str], Vectors]:
    """Each labelled intent's unit centre in the candidates' space (the newest
    LABELLED_SAMPLE labelled examples)."""
    rows = session.exec(
        select(Example.text, Example.correct_intent)
        .where(
            col(Example.tenant_id) == actor.tenant_id,
            col(Example.correct_intent).is_not(None),
            col(Example.status) != ExampleStatus.REJECTED.value,
        )
        .order_by(col(Example.id).desc())
        .limit(LABELLED_SAMPLE)
    ).all()
    if not rows:
        return [], np.zeros((0, space.rows.shape[1]))
    embedded = space.embed([body for body, _ in rows])
    by_intent: defaultdict[str, list[int]] = defaultdict(list)
    for n, (_, intent) in enumerate(rows):
        by_intent[str(intent)].append(n)
    names = sorted(by_intent)
    means = np.vstack(
        [np.asarray(embedded[by_intent[name]].mean(axis=0)).ravel() for name in names]
    )
    return names, np.asarray(normalize(means), dtype=np.float64)


def _top(names: Sequence[str], scores: Vectors) -> list[list[Any]]:
    order = np.argsort(-scores, kind="stable")[:NEAREST_INTENTS]
    top = [(str(names[i]), round(float(scores[i]), 3)) for i in order]
    return [[name, score] for name, score in top if score > 0]


def _gap_row(actor: Actor, cluster: _Cluster) -> KnowledgeGap:
    members = cluster.members
    confidences = [m.confidence for m in members if m.confidence is not None]
    return KnowledgeGap(
        tenant_id=actor.tenant_id,
        label=cluster.label,
        size=len(members),
        escalation_rate=round(sum(m.escalated for m in members) / len(members), 4),
        avg_confidence=round(float(np.mean(confidences)), 4) if confidences else None,
        severity=round(sum(m.failure for m in members), 2),
        example_ids=sorted(m.id for m in members),
        representatives=cluster.representatives,
        nearest_intents=cluster.nearest_intents,
    )


# --- reading --------------------------------------------------------------------------------


def _view(row: KnowledgeGap) -> GapView:
    assert row.id is not None
    return GapView(
        id=row.id,
        status=row.status,
        label=row.label,
        size=row.size,
        escalation_rate=row.escalation_rate,
        avg_confidence=row.avg_confidence,
        severity=row.severity,
        representatives=tuple(row.representatives),
        nearest_intents=tuple((str(name), float(score)) for name, score in row.nearest_intents),
        example_ids=tuple(int(i) for i in row.example_ids),
        created_at=row.created_at,
        resolution=row.resolution,
    )


def _most_severe(gap: GapView) -> tuple[float, int, int]:
    return (-gap.severity, -gap.size, gap.id)


def list_gaps(*, session: Session, actor: Actor, status: str = "open") -> list[GapView]:
    """The shop's gaps with that status, most severe first (admin)."""
    require_role(actor, Role.ADMIN)
    if status not in {s.value for s in GapStatus}:
        raise InvalidInput(f"A gap is open, dismissed or resolved (got '{status}').")
    rows = session.exec(
        select(KnowledgeGap).where(
            col(KnowledgeGap.tenant_id) == actor.tenant_id, col(KnowledgeGap.status) == status
        )
    ).all()
    return sorted((_view(row) for row in rows), key=_most_severe)


def get_gap(*, session: Session, actor: Actor, gap_id: int) -> GapView:
    """One gap of the shop (admin)."""
    require_role(actor, Role.ADMIN)
    return _view(_load(session, actor, gap_id))


def _load(session: Session, actor: Actor, gap_id: int) -> KnowledgeGap:
    row = session.exec(
        select(KnowledgeGap).where(
            col(KnowledgeGap.tenant_id) == actor.tenant_id, col(KnowledgeGap.id) == gap_id
        )
    ).first()
    if row is None:
        raise NotFound(f"Your shop has no knowledge gap {gap_id}.")
    return row


def _load_open(session: Session, actor: Actor, gap_id: int) -> KnowledgeGap:
    row = _load(session, actor, gap_id)
    if row.status != GapStatus.OPEN.value:
        raise InvalidInput(f"Knowledge gap {gap_id} is already {row.status}.")
    return row


# --- acting ---------------------------------------------------------------------------------


def dismiss_gap(
    *, session: Session, actor: Actor, gap_id: int, reason: str | None = None
) -> GapView:
    """Close a gap without relabelling; its messages are not clustered again (admin; audited)."""
    require_role(actor, Role.ADMIN)
    _lock(session, actor)
    gap = _close(session, actor, _load_open(session, actor, gap_id), GapStatus.DISMISSED, None)
    audit.record(
        session=session,
        actor=actor,
        action="gap.dismiss",
        entity_type="knowledge_gap",
        entity_id=gap_id,
        before={"status": GapStatus.OPEN.value},
        after={"status": gap.status, "label": gap.label, "size": gap.size},
        reason=reason,
    )
    return _view(gap)


def resolve_gap(
    *, session: Session, actor: Actor, gap_id: int, intent: str, create_intent: bool = False
) -> GapView:
    """Give the gap's messages that still exist one intent (new when create_intent) as one
    undoable batch, and close the gap (admin; audited)."""
    require_role(actor, Role.ADMIN)
    _lock(session, actor)
    gap = _load_open(session, actor, gap_id)
    members = _existing(session, actor, gap.example_ids)
    if not members:
        raise InvalidInput(
            f"None of the messages of knowledge gap {gap_id} exist any more: dismiss it instead."
        )
    result = bulk_relabel(
        session=session,
        actor=actor,
        example_ids=members,
        intent=intent,
        create_intent=create_intent,
        note=f"knowledge gap {gap_id}",
    )
    gap = _close(session, actor, gap, GapStatus.RESOLVED, intent.strip())
    audit.record(
        session=session,
        actor=actor,
        action="gap.resolve",
        entity_type="knowledge_gap",
        entity_id=gap_id,
        before={"status": GapStatus.OPEN.value},
        after={
            "status": gap.status,
            "intent": gap.resolution,
            "created_intent": create_intent,
            "relabelled": result.count,
            "batch_id": result.batch_id,
        },
    )
    return _view(gap)


def _existing(session: Session, actor: Actor, example_ids: Sequence[int]) -> list[int]:
    found: list[int] = []
    for chunk in _chunks(sorted(set(example_ids))):
        rows = session.exec(
            select(Example.id).where(
                col(Example.tenant_id) == actor.tenant_id, col(Example.id).in_(chunk)
            )
        ).all()
        found += [int(i) for i in rows if i is not None]
    return sorted(found)


def _chunks(ids: Sequence[int], size: int = 1_000) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _close(
    session: Session, actor: Actor, gap: KnowledgeGap, status: GapStatus, resolution: str | None
) -> KnowledgeGap:
    gap.status, gap.resolution = status.value, resolution
    gap.resolved_by, gap.resolved_at = actor.user_id, utcnow()
    session.add(gap)
    session.flush()
    return gap
