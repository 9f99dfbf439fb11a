"""Does fine-tuning the sentence encoder on resolved tickets (contrastive, SetFit-style) pay for its CPU time?

For each chosen fold of the quality benchmark's split, the encoder is fine-tuned on that fold's training tickets
only (pairs of tickets with the same resolver, in-batch negatives), every ticket is embedded again, and the
embeddings + LR baseline and the product's pipeline are scored with the base and the tuned embeddings.

python bench/finetune.py [--folds-run 2] [--steps 150] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.config import load_config  # noqa: E402
from features.encoders.transformer import TransformerEncoder, embed_texts, resolve_model  # noqa: E402
from training.benchmark import (  # noqa: E402
    Fold,
    Product,
    TunedLinear,
    fold_splits,
    load_labelled,
    machine,
    markdown_table,
    score,
)
from training.embed_cache import EmbeddingCache  # noqa: E402
from training.encode import settle_max_length  # noqa: E402


def pair_batches(labels: np.ndarray, steps: int, batch: int, seed: int) -> list[list[tuple[int, int]]]:
    """`steps` batches of (anchor, positive) index pairs; no label twice in a batch, so in-batch negatives are
    really negatives. Labels are drawn with probability proportional to the square root of their size."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    usable = [g for g in groups if len(groups[g]) >= 2]
    weights = np.sqrt([len(groups[g]) for g in usable])
    weights = weights / weights.sum()
    np_rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        chosen = np_rng.choice(len(usable), size=min(batch, len(usable)), replace=False, p=weights)
        out.append([tuple(rng.sample(groups[usable[c]], 2)) for c in chosen])
    return out


def fine_tune(
    model_name: str,
    max_len: int,
    texts: list[str],
    labels: np.ndarray,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    out: Path,
) -> float:
    """Multiple-negatives ranking loss on same-resolver pairs; saves the tuned encoder in `out`; seconds taken."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    model = SentenceTransformer(resolve_model(model_name)[0], device="cpu")  # a fresh copy, not the cached encoder
    model.max_seq_length = max_len
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    batches = pair_batches(labels, steps, batch, seed)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / max(1, steps - warmup))
    )
    started = time.perf_counter()
    for step, pairs in enumerate(batches):
        anchors = model.tokenize([texts[a] for a, _ in pairs])
        positives = model.tokenize([texts[p] for _, p in pairs])
        ea = F.normalize(model(anchors)["sentence_embedding"], dim=-1)
        ep = F.normalize(model(positives)["sentence_embedding"], dim=-1)
        sim = 20.0 * ea @ ep.T
        target = torch.arange(len(pairs))
        loss = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"  step {step + 1}/{steps} loss {loss.item():.3f} {time.perf_counter() - started:.0f} s", flush=True)
    model.eval()
    model.save(str(out))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/it_tickets/tickets.csv")
    parser.add_argument("--config", type=Path, default=ROOT / "bench/configs/shared_it.yaml")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--folds-run", type=int, default=2, help="how many of the folds to run (each costs minutes)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--cache", default=str(ROOT / ".cache/embeddings.sqlite"))
    parser.add_argument("--work", type=Path, default=ROOT / ".cache/finetune")
    parser.add_argument("--name", default="shared_it")
    args = parser.parse_args()

    config = load_config(args.config)
    labelled = load_labelled(args.data, config)
    tickets, raw_text, resolver, escalate = labelled.tickets, labelled.raw_text, labelled.resolver, labelled.escalate
    texts = tickets["text"].tolist()
    config = settle_max_length(config, texts)
    opts = config.model
    base, _ = EmbeddingCache(args.cache).embed(
        texts, TransformerEncoder(opts.embedding_model, opts.max_seq_length), opts.embed_batch_size, True
    )
    splits = fold_splits(resolver, args.folds, 42)

    def part(idx: np.ndarray, emb: np.ndarray) -> Fold:
        return Fold(tickets.iloc[idx].reset_index(drop=True), raw_text[idx], emb[idx], escalate[idx], resolver[idx])

    rows: list[dict] = []
    for k, (train_idx, test_idx) in enumerate(splits[: args.folds_run]):
        out = args.work / f"fold{k}-s{args.steps}-b{args.batch}"
        print(f"fold {k}: fine-tuning on {len(train_idx)} tickets", flush=True)
        tune_s = fine_tune(
            opts.embedding_model,
            int(opts.max_seq_length),
            [texts[i] for i in train_idx],
            resolver[train_idx],
            args.steps,
            args.batch,
            args.lr,
            k,
            out,
        )
        t0 = time.perf_counter()
        tuned = embed_texts(texts, str(out), opts.max_seq_length, opts.embed_batch_size, True)
        embed_s = time.perf_counter() - t0
        for label, emb in (("base", base), ("tuned", tuned)):
            train, test = part(train_idx, emb), part(test_idx, emb)
            for cand in (TunedLinear("embeddings + LR, C by inner CV", "embedding"), Product("product", config)):
                cand.fit(train)
                esc, proba, classes = cand.predict(test)
                specialist = [i for i, c in enumerate(classes) if config.teams.kind(c) != "first_line"]
                on = test.escalate
                frame = pd.DataFrame(proba[on][:, specialist], columns=[classes[i] for i in specialist])
                row = {
                    "fold": k,
                    "embeddings": label,
                    "model": cand.name,
                    **score(test.escalate, esc, test.resolver[on], frame.to_numpy(), list(frame.columns)),
                    "tune_seconds": tune_s if label == "tuned" else 0.0,
                    "embed_seconds": embed_s if label == "tuned" else 0.0,
                }
                print({k2: round(v, 3) if isinstance(v, float) else v for k2, v in row.items()}, flush=True)
                rows.append(row)
    cols = [
        ("fold", "fold", "{}"),
        ("embeddings", "embeddings", "{}"),
        ("model", "model", "{}"),
        ("escalation_average_precision", "esc. AP", "{:.3f}"),
        ("escalation_recall_at_p90", "recall @ P90", "{:.3f}"),
        ("target_top1_accuracy", "team top-1", "{:.3f}"),
        ("target_top3_accuracy", "team top-3", "{:.3f}"),
        ("target_macro_f1", "team macro-F1", "{:.3f}"),
        ("tune_seconds", "fine-tune s", "{:.0f}"),
        ("embed_seconds", "re-embed s", "{:.0f}"),
    ]
    m = machine()
    text = (
        f"# Encoder fine-tuning (contrastive, same-resolver pairs): {args.name}\n\n"
        f"{len(tickets)} tickets from `{args.data}`; folds {args.folds_run} of {args.folds} (seed 42, the quality "
        f"benchmark's split); {args.steps} steps of {args.batch} pairs, lr {args.lr}, max {opts.max_seq_length} "
        "tokens; the encoder sees only the fold's training tickets.\n\n"
        f"{markdown_table(rows, cols)}\n\nMachine: {m['cpu']}, {m['cores']} cores; {m['date']}, code "
        f"{m['code_version']}.\n"
    )
    results = ROOT / "bench/results"
    (results / f"finetune_{args.name}.md").write_text(text, encoding="utf-8")
    (results / f"finetune_{args.name}.json").write_text(json.dumps({"rows": rows, "machine": m}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
