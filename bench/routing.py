"""How far routing can go: ways of choosing routing thresholds on each training part's out-of-fold answers,
judged on its unseen fold, and the ceiling (a threshold chosen on the unseen answers themselves).

python bench/routing.py            # the IT tickets when ../shared/data is there, else the sample

Per fold, the product is trained as the quality benchmark trains it; every strategy below picks thresholds from
the out-of-fold answers the model keeps (the ones its own thresholds were chosen on).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from harness import parse_args, save  # noqa: E402  (harness puts the project on the path)

import training.fit as fit  # noqa: E402
from features.model.router import RoutingAnswers  # noqa: E402
from training.benchmark import fold_splits, load_labelled, markdown_table  # noqa: E402
from training.embed_cache import EmbeddingCache  # noqa: E402
from training.encode import serving_encoder, settle_max_length  # noqa: E402
from training.labels import derive_labels  # noqa: E402

NEVER = 2.0
Strategy = Callable[[RoutingAnswers, list[str]], dict[str, float]]


def per_target(z: float) -> Strategy:
    """Each target its own threshold, its precision's Wilson lower end at the target (the product's way)."""

    def choose(answers: RoutingAnswers, targets: list[str]) -> dict[str, float]:
        return fit.thresholds_for(answers, targets, 0.9, z=z).per_target

    return choose


def one_threshold(z: float, veto: bool = False) -> Strategy:
    """One threshold for every proven target (20+ answers); with `veto`, a target whose own answers above it
    fall short gets its own, higher one."""

    def choose(answers: RoutingAnswers, targets: list[str]) -> dict[str, float]:
        top, p, right = answers.top, answers.probability, answers.correct
        proven = np.bincount(top, minlength=len(targets)) >= 20
        found = fit.lowest_precise_threshold(right[proven[top]], p[proven[top]], 0.9, z)
        shared = NEVER if found is None else max(found, fit.ROUTE_FLOOR)
        out = {}
        for j, name in enumerate(targets):
            if not proven[j]:
                continue
            mine, above = top == j, (top == j) & (p >= shared)
            out[name] = shared
            if veto and above.sum() >= 5 and right[above].mean() < 0.9:
                own = fit.lowest_precise_threshold(right[mine], p[mine], 0.9)
                out[name] = NEVER if own is None else max(own, shared)
        return out

    return choose


def ceiling(p: np.ndarray, right: np.ndarray, precision: float) -> dict[str, float]:
    """Coverage and precision of the lowest single threshold whose answers, chosen on these unseen answers
    themselves, are right `precision` of the time (ties kept together; p < 0: never routed)."""
    routable = p >= 0
    threshold = fit.lowest_precise_threshold(right[routable], p[routable], precision)
    routed = routable & (p >= (NEVER if threshold is None else threshold))
    return {
        "coverage": routed.sum() / len(p),
        "precision": right[routed].mean() if routed.any() else float("nan"),
        "worst_fold": float("nan"),
        "threshold": float("nan") if threshold is None else threshold,
    }


STRATEGIES = {
    "per target, Wilson z=1 (the product)": per_target(1.0),
    "per target, Wilson z=0.5": per_target(0.5),
    "per target, point precision": per_target(0.0),
    "one threshold, Wilson z=1": one_threshold(1.0),
    "one threshold, Wilson z=2": one_threshold(2.0),
    "one threshold z=2, per-target veto": one_threshold(2.0, veto=True),
}


def main() -> None:
    args, name = parse_args(__doc__ or "", lambda parser: parser.add_argument("--seed", type=int, default=42))
    from harness import parse_sets

    from features.config import load_config
    from training.benchmark import with_overrides

    config = with_overrides(load_config(args.config), parse_sets(args.set))
    labelled = load_labelled(args.data, config)
    cache = ".cache/embeddings.sqlite"
    config = settle_max_length(config, labelled.tickets["text"].tolist(), cache)
    opts = config.model
    embeddings, _ = EmbeddingCache(cache).embed(
        labelled.tickets["text"].tolist(), serving_encoder(opts, cache), opts.embed_batch_size, True
    )
    counts = {s: np.zeros(2) for s in STRATEGIES}
    per_fold: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    unseen_p, unseen_right = [], []
    for train_idx, test_idx in fold_splits(labelled.resolver, 5, args.seed):
        tickets = labelled.tickets.iloc[train_idx].reset_index(drop=True)
        labels = derive_labels(labelled.resolver[train_idx], config.teams, config.min_examples)
        router = fit.fit_router(tickets, embeddings[train_idx], labels, config, progress=False)
        scored = router.score(labelled.tickets.iloc[test_idx].reset_index(drop=True), embeddings[test_idx])
        on = labelled.escalate[test_idx]
        p_tgt = scored.targets[on]
        top = p_tgt.argmax(axis=1)
        p_top, names = p_tgt[np.arange(len(top)), top], np.array(router.targets, dtype=object)[top]
        right = names == labelled.resolver[test_idx][on]
        kept_first = scored.escalation[on] < router.thresholds.resolve_first  # never routed, as the router answers
        unseen_p.append(np.where(kept_first, -1.0, p_top))
        unseen_right.append(right)
        for label, strategy in STRATEGIES.items():
            chosen = strategy(router.routing_answers["out_of_fold"], router.targets)
            routed = np.array([p >= chosen.get(n, NEVER) for p, n in zip(p_top, names, strict=True)]) & ~kept_first
            counts[label] += [routed.sum(), (routed & right).sum()]
            per_fold[label].append(float((routed & right).sum() / max(routed.sum(), 1)))
    escalated = int(labelled.escalate.sum())
    rows = [
        {
            "strategy": label,
            "coverage": routed / escalated,
            "precision": right / max(routed, 1),
            "worst_fold": min(per_fold[label]),
        }
        for label, (routed, right) in counts.items()
    ]
    p, right = np.concatenate(unseen_p), np.concatenate(unseen_right)
    rows.append({"strategy": "ceiling: one threshold chosen on the unseen answers", **ceiling(p, right, 0.9)})
    cols = [
        ("strategy", "routing thresholds", "{}"),
        ("coverage", "routed (escalated tickets)", "{:.3f}"),
        ("precision", "routed precision", "{:.3f}"),
        ("worst_fold", "worst fold", "{:.3f}"),
    ]
    notes = (
        f"`{args.data.name}`, 5-fold stratified CV (seed {args.seed}), target precision 0.9; thresholds chosen on "
        "each training part's out-of-fold answers, applied to its unseen fold (nothing routed where the escalation "
        f"answer is resolve_first). Team top-1 on the unseen folds: {right.mean():.3f}."
    )
    save(
        f"routing_{name}",
        "Routing thresholds: coverage against precision",
        markdown_table(rows, cols),
        notes,
        {"rows": rows},
    )
    print(markdown_table(rows, cols))


if __name__ == "__main__":
    main()
