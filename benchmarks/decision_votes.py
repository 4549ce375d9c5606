"""Decision votes over several runs of one model: does the majority of k reasonings decide better than one greedy one?

    saro eval --config configs/validation.yaml model=M output=runs/demo/val/rw                  # greedy
    saro eval --config configs/validation.yaml model=M output=runs/demo/val/rw-t07-s1 temperature=0.7 seed=1
    ...                                                                                         # k-1 sampled runs
    python benchmarks/decision_votes.py runs/demo/val/rw runs/demo/val/rw-t07-s{1,2,3,4} --out runs/demo/val/rw-vote5
    python benchmarks/selection_table.py RW=runs/demo/val/rw RW-vote5=runs/demo/val/rw-vote5

Per prompt, every folder's output gives a decision ("refuse" or "answer", from the reasoning's last decision line;
none without one). The vote refuses when at least `--refuse-at` of the decided outputs refuse (default: more than
half; a tie keeps the first folder's decision), and the prompt's output is the first folder's whose decision matches
the vote: the greedy output wherever it agrees, when the greedy folder comes first. The `--out` folder holds the
chosen generations and judgments and a results.json of the same suites, so selection_table.py reads it like any
`saro eval` folder. Each output's tokens are the sum over the folders: the cost of sampling them all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saro.errors import DataError  # noqa: E402
from saro.evaluation.metrics import suite_metrics  # noqa: E402
from saro.evaluation.runner import metric_row  # noqa: E402
from saro.evaluation.votes import pick  # noqa: E402
from saro.records import PromptRecord, read_jsonl, stable_id, write_jsonl  # noqa: E402


def load_run(folder: Path) -> dict:
    """One `saro eval` folder: its suites' info, records, generations and judgments, keyed by generation id."""
    results_path = folder / "results.json"
    if not results_path.is_file():
        raise DataError(f"{results_path}: no results.json (run saro eval into {folder} first)")
    results = json.loads(results_path.read_text())
    records = {}
    for where, obj in read_jsonl(folder / "prompts.jsonl"):
        record = PromptRecord.from_dict(obj, where)
        records[stable_id(record.meta["suite"], record.id)] = record
    generations = {g["id"]: g for _, g in read_jsonl(folder / "generations.jsonl") if g["id"] in records}
    judgments = {j["generation_id"]: j for _, j in read_jsonl(folder / "judgments.jsonl")}
    missing = [gid for gid in records if gid not in generations or gid not in judgments]
    if missing:
        raise DataError(f"{folder}: {len(missing)} prompts have no judged generation (finish its saro eval first)")
    return {"results": results, "records": records, "generations": generations, "judgments": judgments}


def combine(runs: list[dict], refuse_at: int | None) -> tuple[dict, list[dict], list[dict], dict]:
    """(results, chosen generations, their judgments, changes per suite) of the vote over `runs`."""
    first = runs[0]
    for run in runs[1:]:
        if set(run["records"]) != set(first["records"]):
            raise DataError("the folders evaluate different prompts; vote only over runs of one configuration")
    chosen_generations, chosen_judgments, per_suite, changes = [], [], {}, {}
    for gid, record in first["records"].items():
        outputs = [(run["generations"][gid], run["judgments"][gid]) for run in runs]
        index, ballot = pick([g["reasoning"] for g, _ in outputs], refuse_at)
        generation, judgment = dict(outputs[index][0]), outputs[index][1]
        generation["tokens"] = {
            part: sum(g["tokens"][part] for g, _ in outputs) for part in generation["tokens"]
        }  # the cost of all k outputs
        generation["vote"] = ballot
        chosen_generations.append(generation)
        chosen_judgments.append(judgment)
        suite = record.meta["suite"]
        per_suite.setdefault(suite, []).append(metric_row(record, generation, judgment))
        if index:
            changes[suite] = changes.get(suite, 0) + 1
    suites = {}
    for name, info in first["results"]["suites"].items():
        kept = {k: info[k] for k in ("type", "version", "n", "leaks_removed") if k in info}
        suites[name] = {**kept, **suite_metrics(info["type"], per_suite.get(name, []))}
    results = {
        "model": first["results"].get("model"),
        "vote": {"runs": len(runs), "refuse_at": refuse_at},
        "generation": first["results"].get("generation"),
        "judge": first["results"].get("judge"),
        "suites": suites,
    }
    return results, chosen_generations, chosen_judgments, changes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="saro eval folders of one model, the greedy one first")
    parser.add_argument("--out", type=Path, required=True, help="folder for the voted generations and results")
    parser.add_argument("--refuse-at", type=int, default=None, help="refusals needed to refuse (default: majority)")
    args = parser.parse_args()
    if len(args.folders) < 2:
        print("decision_votes: give at least two folders to vote over", file=sys.stderr)
        return 2
    if args.refuse_at is not None and not 1 <= args.refuse_at <= len(args.folders):
        print(f"decision_votes: --refuse-at must be between 1 and {len(args.folders)}", file=sys.stderr)
        return 2
    try:
        runs = [load_run(folder) for folder in args.folders]
        results, generations, judgments, changes = combine(runs, args.refuse_at)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "generations.jsonl", generations)
    write_jsonl(args.out / "judgments.jsonl", judgments)
    write_jsonl(args.out / "prompts.jsonl", (r.to_dict() for r in runs[0]["records"].values()))
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"decision_votes: {len(generations)} prompts, output taken from a later run for {changes} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
