"""The lines ``thresher mix`` prints for its run directory (kept apart from the job so that reading a run's
summary does not import the job that writes runs)."""

from __future__ import annotations

from pathlib import Path

import yaml


def _kind(mixture: dict) -> str:
    return "tiny_lm" if mixture["proxy"]["kind"] == "tiny_lm" else "n-gram"


def format_mix_summary(manifest: dict, path: Path) -> str:
    """The lines ``thresher mix`` prints: the weights (largest first), the diagnostics, where the files are."""
    mixture = yaml.safe_load((path / "mixture.yaml").read_text(encoding="utf-8"))
    if mixture["method"] == "doremi":
        c, d = manifest["counts"], mixture["doremi"]
        lines = [f"method doremi | group field {mixture['group_field']} | {d['steps']} steps, eta {d['eta']}, "
                 f"smoothing {d['smoothing']} | seed {mixture['seed']}",
                 f"records: {c['input_records']:,} read, {c['failed']:,} failed; {c['records_used']:,} used by the "
                 f"proxies; {_kind(mixture)} proxies on {mixture['proxy']['tokens']:,} tokens",
                 f"worst group's excess loss of the Group DRO proxy over the reference: "
                 f"{mixture['worst_group_excess']['dro_proxy']:.4g} nats (trajectory.parquet has every step)",
                 "weights (averaged over the steps):"]
    elif mixture["method"] in ("aioli", "skillit"):
        c, o = manifest["counts"], mixture["online"]
        lines = [f"method {mixture['method']} | group field {mixture['group_field']} | {o['steps']} rounds, eta "
                 f"{o['eta']}, interactions {o['interactions']} | seed {mixture['seed']}",
                 f"records: {c['input_records']:,} read, {c['failed']:,} failed; {c['records_used']:,} used by the "
                 f"proxy; an online {_kind(mixture)} proxy on {mixture['proxy']['tokens']:,} tokens",
                 *(f"target {t['name']} (weight {t['weight']}): proxy loss {t['proxy_loss_first_round']:.4f} after "
                   f"the first round, {t['proxy_loss_last_round']:.4f} after the last" for t in mixture["targets"]),
                 "weights (averaged over the rounds; trajectory.parquet has every round):"]
    elif "cross_validation" not in mixture:  # a baseline over a pool
        c = manifest["counts"]
        params = ", ".join(f"{k} {mixture[k]}" for k in ("tau", "max_epochs") if k in mixture)
        lines = [f"method {mixture['method']}{' (' + params + ')' if params else ''} | group field "
                 f"{mixture['group_field']} | budget {mixture.get('budget_tokens', 'none')} tokens",
                 f"records: {c['input_records']:,} read, {c['counted']:,} counted, {c['failed']:,} failed; "
                 f"{c['tokens']:,} whitespace tokens in {c['groups']} groups",
                 "weights:" + ("  (expected tokens, epochs)" if "expected_tokens" in mixture else "")]
    else:
        cv = mixture["cross_validation"]
        lines = [f"method {mixture['method']} | regressor {mixture['regressor']} | objective {mixture['objective']} "
                 f"| seed {mixture['seed']}",
                 f"runs: {manifest['counts']['runs']:,}, groups: {manifest['counts']['groups']}; "
                 f"{cv['folds']}-fold cross-validation: Spearman {cv['spearman']:.4f}, RMSE {cv['rmse']:.4g}",
                 f"predicted objective of the mixture: {mixture['predicted_objective']:.6g} "
                 f"(best run {mixture['best_run']['index']}: {mixture['best_run']['objective']:.6g})",
                 *([f"natural mixture (run 0): objective {mixture['natural']['objective']:.6g}, predicted "
                    f"{mixture['natural']['predicted']:.6g}"] if "natural" in mixture else []),
                 "weights:"]
    width = max(len(g) for g in mixture["weights"])
    for group, weight in sorted(mixture["weights"].items(), key=lambda kv: -kv[1]):
        drawn = (f"  {mixture['expected_tokens'][group]:>14,}  {mixture['epochs'][group]:.2f}"
                 if "epochs" in mixture else "")
        lines.append(f"  {group:<{width}}  {weight:.4f}{drawn}")
    return "\n".join(lines)
