"""A minimal hand-written PyTorch loop for FS-MTL on FDU-MTL: the yardstick for polytask's trainer.

Deliberately plain and independent of polytask: its own file reading, a vocabulary of every
train token, a shared embedding (200) + ``nn.LSTM`` BiLSTM (128 per direction) with max pooling,
one linear layer per domain, dropout 0.3, Adam 1e-3, batch 32, uniform task sampling, random
batches padded to their longest text (no bucketing), dev = the last 200 lines of each
``*.task.train``, evaluation every 500 steps, test accuracy at the best mean dev step.

    python benchmarks/hand_loop.py --data-dir ../shared/data --steps 6000 --out result.json

At every evaluation it saves its whole state (weights, Adam, the best weights so far, the random
generators, the dev curve and the counters) to ``<out>.state.pt``; started again with the same
arguments it resumes from there and ends exactly as an uninterrupted run.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import random
import resource
import time
from pathlib import Path

import torch
from torch import nn

DOMAINS = ["apparel", "baby", "books", "camera_photo", "dvd", "electronics", "health_personal_care",
           "imdb", "kitchen_housewares", "magazines", "MR", "music", "software", "sports_outdoors",
           "toys_games", "video"]


def read(path: Path) -> list[tuple[int, list[str]]]:
    rows = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        label, _, text = raw.decode("utf-8", errors="replace").partition("\t")
        rows.append((int(label), text.lower().split() or ["<unk>"]))
    return rows


class Model(nn.Module):
    def __init__(self, vocab: int, tasks: int, exact_backward: bool = False):
        super().__init__()
        self.exact_backward = exact_backward
        self.emb = nn.Embedding(vocab, 200, padding_idx=0)
        self.lstm = nn.LSTM(200, 128, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.3)
        self.heads = nn.ModuleList(nn.Linear(256, 2) for _ in range(tasks))

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        mask = x != 0
        if self.exact_backward:      # packed: the backward direction starts at each text's last word
            packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.emb(x)), mask.sum(1).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            h, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        else:                        # as nn.LSTM reads a right-padded batch: backward reads the padding first
            h, _ = self.lstm(self.drop(self.emb(x)))
        h = h.masked_fill(~mask[..., None], float("-inf")).max(1).values
        return self.heads[task](self.drop(h))


def pad(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--exact-backward", action="store_true",
                    help="pack the batches, so the backward LSTM never reads padding")
    ap.add_argument("--run-dir", default="",
                    help="also write the test predictions there as a polytask run does (tasks.json, "
                         "predictions/test.jsonl), so that polytask report can pair them with a run's")
    args = ap.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    lock = open(str(args.out) + ".lock", "w")       # one process per run: two would write one state file
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit(f"{args.out}: another hand loop is training this run (it holds {lock.name})") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    root = Path(args.data_dir) / "fdu-mtl"
    data = {}
    for d in DOMAINS:
        train = read(root / f"{d}.task.train")
        data[d] = {"train": train[:-200], "dev": train[-200:], "test": read(root / f"{d}.task.test")}
    vocab = {"<pad>": 0, "<unk>": 1}
    for d in DOMAINS:
        for _, toks in data[d]["train"]:
            for t in toks:
                vocab.setdefault(t, len(vocab))
    enc = {d: {s: [(y, [vocab.get(t, 1) for t in toks]) for y, toks in rows] for s, rows in v.items()}
           for d, v in data.items()}
    model = Model(len(vocab), len(DOMAINS), args.exact_backward)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    predicted: dict[str, list[int]] = {}          # the last accuracy() call's predictions, per domain

    def accuracy(split: str) -> dict[str, float]:
        model.eval()
        out = {}
        with torch.no_grad():
            for k, d in enumerate(DOMAINS):
                rows = enc[d][split]
                predicted[d] = []
                for i in range(0, len(rows), 100):
                    chunk = rows[i:i + 100]
                    predicted[d] += model(pad([s for _, s in chunk]), k).argmax(-1).tolist()
                out[d] = 100.0 * sum(p == y for p, (y, _) in zip(predicted[d], rows)) / len(rows)
        model.train()
        return out

    best_dev, best_state, tokens, train_s, curve, first = -1.0, None, 0, 0.0, {}, 1
    state_path = Path(str(args.out) + ".state.pt")
    if state_path.is_file():                      # resume: everything the loop reads from here on
        saved = torch.load(state_path, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        random.setstate(saved["python_random"])
        torch.set_rng_state(saved["torch_random"])
        best_dev, best_state, tokens, train_s = saved["best_dev"], saved["best_state"], saved["tokens"], saved["train_s"]
        curve, first = saved["curve"], saved["step"] + 1
        t_start -= saved["wall_s"]
        print(f"resumed at step {saved['step']}", flush=True)
    for step in range(first, args.steps + 1):
        t0 = time.perf_counter()
        k = random.randrange(len(DOMAINS))
        batch = random.sample(enc[DOMAINS[k]]["train"], 32)
        x = pad([s for _, s in batch])
        tokens += sum(len(s) for _, s in batch)
        loss = loss_fn(model(x, k), torch.tensor([y for y, _ in batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_s += time.perf_counter() - t0
        if step % args.eval_every == 0 or step == args.steps:
            dev = accuracy("dev")
            mean = sum(dev.values()) / len(dev)
            curve[step] = mean
            print(f"step {step} dev {mean:.2f}", flush=True)
            if mean > best_dev:
                best_dev = mean
                best_state = {n: p.detach().clone() for n, p in model.state_dict().items()}
            state_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "python_random": random.getstate(),
                        "torch_random": torch.get_rng_state(), "best_dev": best_dev, "best_state": best_state,
                        "tokens": tokens, "train_s": train_s, "curve": curve, "step": step,
                        "wall_s": time.perf_counter() - t_start}, str(state_path) + ".tmp")
            Path(str(state_path) + ".tmp").replace(state_path)
    model.load_state_dict(best_state)
    test = accuracy("test")
    result = {"test": test, "test_avg": sum(test.values()) / len(test), "dev_avg": best_dev,
              "wall_s": time.perf_counter() - t_start, "train_tokens_per_s": tokens / train_s,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
              "params": sum(p.numel() for p in model.parameters()), "steps": args.steps, "dev_curve": curve,
              "exact_backward": args.exact_backward}
    if args.run_dir:                              # the format of polytask's predictions/test.jsonl
        run = Path(args.run_dir)
        (run / "predictions").mkdir(parents=True, exist_ok=True)
        (run / "tasks.json").write_text(json.dumps({d: {"type": "classification", "labels": ["0", "1"],
                                                        "metrics": ["accuracy"]} for d in DOMAINS}, indent=1))
        with (run / "predictions" / "test.jsonl").open("w") as f:
            for d in DOMAINS:
                for i, (p, (y, _)) in enumerate(zip(predicted[d], enc[d]["test"])):
                    f.write(json.dumps({"task": d, "index": i, "gold": y, "prediction": p}) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "test"}))


if __name__ == "__main__":
    main()
