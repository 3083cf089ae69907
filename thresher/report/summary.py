"""Plain-text summaries of runs, keyed by the job that wrote them: what every command prints at its end.

They read only a run's manifest (and its folder for paths), so opening a run never imports the job that wrote it.
"""

from __future__ import annotations

from pathlib import Path


def summarize(manifest: dict, path: Path) -> str:
    """The summary table of the run in ``path`` whose manifest is ``manifest``, chosen by its job."""
    job = manifest.get("job")
    if job == "dedup":
        return format_dedup_summary(manifest, path)
    if job == "label" and "selection" not in manifest:
        return format_label_summary(manifest, path)
    if job == "score":
        return format_rule_summary(manifest, path)
    if job == "mix":
        from thresher.mix.summary import format_mix_summary

        return format_mix_summary(manifest, path)
    if job == "evalset":
        return format_evalset_summary(manifest, path)
    if job == "evaluate active":
        import json

        return format_active(json.loads((Path(path) / "evaluation.json").read_text(encoding="utf-8"))["results"])
    text = format_audit_summary(manifest) if job == "audit" and "selection" not in manifest else \
        format_summary(manifest)
    return text + _experiment_lines(path) if job == "audit" else text


def _experiment_lines(path: Path) -> str:
    """Where a recipe's experiments on an audit run (OUT/pruning, OUT/label-errors) wrote their results."""
    return "".join(f"\n{f.parent.name} against random: {f}" for f in sorted(Path(path).glob("*/results.csv")))


def format_active(results: list[dict]) -> str:
    """The table ``thresher evaluate --experiment active`` prints."""
    lines = [f"{'strategy':<18}{'AUC':>8}  {'vs random [95%]':<42}{'final acc':>10}  labels to random's final",
             "-" * 104]
    for r in results:
        delta = (f"{r['auc_delta']:+.4f} [{r['auc_delta_lo']:+.4f}, {r['auc_delta_hi']:+.4f}] {r['verdict']}"
                 if "auc_delta" in r else "baseline")
        reach = (f"{r['labels_to_random_final']:,} ({r['share_of_labels']:.0%})" if r["labels_to_random_final"]
                 else "not reached")
        lines.append(f"{r['strategy']:<18}{r['auc']:>8.4f}  {delta:<42}{r['final_accuracy']:>10.4f}  {reach}")
    return "\n".join(lines)


def format_audit_summary(manifest: dict, max_examples: int = 5) -> str:
    """Records audited, label issues per class, the estimated noise rate, and the worst-scored flagged records."""
    c, m = manifest["counts"], manifest["metrics"]
    cfg = manifest.get("config", {})
    source = f"probabilities from {cfg['probs_from']}" if cfg.get("probs_from") else \
        f"{cfg.get('folds')}-fold {cfg.get('features')} classifier, cross-validated accuracy {m['cv_accuracy']:.3f}"
    lines = [f"records: {c['input_records']:,} read, {c['audited']:,} audited, {c['unlabelled']:,} unlabelled, "
             f"{c['failed']:,} failed" + ("" if c.get("all_accounted_for") else "  [ACCOUNTING MISMATCH]"),
             f"{source}",
             f"label issues ({cfg.get('filter_by')}): {c['label_issues']:,} ({m['label_issue_rate']:.1%} of audited); "
             f"estimated noise rate {m['estimated_noise_rate']:.1%}"]
    dups = c.get("near_duplicates")
    if dups:
        cross = dups.get("cross_split_records")
        lines.append(f"near-duplicates: {dups['records_with_near_duplicate']:,} records have one, "
                     f"{dups['records_in_label_conflicts']:,} of them with another label"
                     + ("; across splits: " + (", ".join(f"{k} {v:,}" for k, v in cross.items()) or "none")
                        if cross is not None else ""))
    lines += ["",
             f"{'class':<24} {'records':>8} {'issues':>7} {'suggested':>10}"]
    for name, row in c["by_class"].items():
        lines.append(f"{name[:24]:<24} {row['records']:>8,} {row['label_issues']:>7,} {row['suggested']:>10,}")
    examples = manifest.get("examples", {}).get("label_issues", [])[:max_examples]
    if examples:
        lines += ["", "lowest label quality among the flagged:"]
        for e in examples:
            lines.append(f"  {e['id']}: {e['label']} -> {e['suggested']} ({e['label_quality']:.3f}) "
                         f"{e['text'][:70]}")
    return "\n".join(lines)


def format_evalset_summary(manifest: dict, path: Path) -> str:
    """What an evalset run chose, and where its items (and a recipe's estimates and check) are."""
    c = manifest["counts"]
    lines = [f"chose {c['chosen']} of {c['items']:,} items by {manifest['method']} (estimator: "
             f"{manifest.get('estimator', 'mean')}, seed {manifest['seed']}; {c['seen_systems']} seen systems)",
             f"a seen system estimated as if new is off by {manifest['seen_mae']:.4f} on average; "
             + (f"intervals are +/- {manifest['half_width']:.4f}" if manifest.get("half_width") is not None else
                "too few seen systems for a finite interval (it spans the scores seen)"),
             f"items to score: {Path(path) / manifest['outputs']['ids']}"]
    for sub, what in (("estimate/estimates.csv", "estimates"), ("check/results.csv", "check")):
        if (Path(path) / sub).is_file():
            lines.append(f"{what}: {Path(path) / sub}")
    return "\n".join(lines)


def format_summary(manifest: dict, max_groups: int = 12) -> str:
    """The table printed at the end of every selection."""
    c = manifest["counts"]
    m = manifest.get("metrics", {})
    cfg = manifest.get("config", {})
    sel = manifest.get("selection", {})
    lines = [
        f"method {cfg.get('method')} | selector {sel.get('selector')} | budget {sel.get('budget') or 'no cap'} | "
        f"seed {cfg.get('seed')}",
        f"records: {c['input_records']:,} read, {c['selected']:,} selected, {c['not_selected']:,} not selected, "
        f"{sum(c.get('filtered', {}).values()):,} filtered, {c['failed']:,} failed"
        + ("" if c.get("all_accounted_for") else "  [ACCOUNTING MISMATCH]"),
        f"selected words: {m.get('selected_words', 0):,}"
        + (f", {m['token_column']}: {m['selected_tokens']:,}" if m.get("token_column", "n_words") != "n_words" else ""),
    ]
    if "kl_reduction" in m:
        lines.append(
            f"KL(target||selection) {m['kl_target_selected']:.4f} vs KL(target||random) {m['kl_target_random']:.4f}"
            f" -> KL reduction {m['kl_reduction']:+.4f}  (KL(target||pool) {m['kl_target_pool']:.4f})")
    comp = m.get("composition")
    if comp:
        lines.append("")
        lines.append(f"{'group':<20} {'pool':>8} {'selected':>9} {'random':>8}")
        for row in comp[:max_groups]:
            lines.append(f"{str(row['group'])[:20]:<20} {row['pool_share']:>7.1%} {row['selected_share']:>9.1%} "
                         f"{row.get('random_share', 0):>8.1%}")
        if len(comp) > max_groups:
            lines.append(f"... {len(comp) - max_groups} more groups")
    return "\n".join(lines)


def format_dedup_summary(manifest: dict, path: Path) -> str:
    """Kept and dropped counts by reason, and the LSH statistics."""
    c = manifest["counts"]
    lines = [f"records: {c['input_records']:,} read, {c['selected']:,} kept, "
             + ", ".join(f"{v:,} {k.replace('_', ' ')}s dropped" for k, v in c["filtered"].items())
             + f", {c['failed']:,} failed"]
    ref = manifest.get("metrics", {}).get("reference")
    if ref:
        if ref["method"] == "minhash":
            lines.append(f"reference: {ref['reference_records']:,} records, {ref['reference_hashes']:,} band keys; "
                         f"{ref['records_with_any_match']:,} pool records share {ref['ngram']}-word shingles with a "
                         f"candidate, {ref['dropped']:,} at Jaccard >= {ref['threshold']}")
        else:
            unit = "texts" if ref["method"] == "exact" else f"{ref['ngram']}-grams"
            lines.append(f"reference: {ref['reference_records']:,} records, {ref['reference_hashes']:,} distinct "
                         f"{unit}; {ref['records_with_any_match']:,} pool records share at least one")
    near = manifest.get("metrics", {}).get("minhash")
    if near:
        lines.append("minhash: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in near.items()
                                             if isinstance(v, int) and not isinstance(v, bool)))
    lines.append(f"kept ids: {path / 'selected' / 'ids.txt'}; clusters: {path / 'scores' / 'scores.parquet'}")
    return "\n".join(lines)


def format_label_summary(manifest: dict, path: Path) -> str:
    """Counts, class balance and its source, the LF table, and dev metrics of the label and end models."""
    c, m = manifest["counts"], manifest
    classes = m["classes"]
    config = m.get("label_config") or m["config"]  # a recipe's select step replaces "config"
    lines = [f"model {config['model']} | {len(classes)} classes | {len(m['lfs']['lfs'])} LFs",
             f"records: {c['input_records']:,} read, {c['labelled']:,} labelled, {c['abstained']:,} abstained "
             f"(no LF voted), {c['failed']:,} failed",
             "by class: " + ", ".join(f"{k} {v:,}" for k, v in c["by_class"].items())]
    errors = {k: v for k, v in c.get("lf_errors", {}).items() if v}
    if errors:
        lines.append("LF errors (counted as abstains): " + ", ".join(f"{k} {v:,}" for k, v in errors.items()))
    balance = m["class_balance"]
    lines.append(f"class balance ({balance['source']}): "
                 + ", ".join(f"{k} {v:.3f}" for k, v in zip(classes, balance["values"])))
    check = balance.get("fit_check")
    if check:
        lines.append(f"fit check: χ²/cell {check['misfit']:.2f} (threshold {check['misfit_threshold']:g}): "
                     f"{check['verdict']}")
    lines += ["", m["analysis_table"]]
    dev = manifest.get("metrics", {}).get("dev")
    if dev:
        lines.append("\ndev metrics (all dev records; abstains count as wrong):")
        for name, r in dev.items():
            lines.append(f"  {name:<22} accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}"
                         + (f"  coverage {r['coverage']:.1%}" if "coverage" in r else ""))
    end = manifest.get("metrics", {}).get("end_model")
    if end:
        lines.append(f"end model: {end['config']['features']} features, trained on {end['trained_on']:,} covered "
                     "records (columns end_label, end_confidence)")
    lines.append(f"labels: {path / 'scores' / 'scores.parquet'}")
    return "\n".join(lines)


def format_rule_summary(manifest: dict, path: Path) -> str:
    """Pass rates and the most common failing rules per family, languages, and fitted scorers' held-out scores."""
    c = manifest["counts"]
    lines = [f"records: {c['input_records']:,} read, {c['scored']:,} scored, {c['failed']:,} failed",
             *stage_lines(manifest), f"scores: {path / 'scores' / 'scores.parquet'}"]
    return "\n".join(lines)


def stage_lines(manifest: dict) -> list[str]:
    """One line per stage result: records each filter dropped, rule pass rates, languages, held-out scores of
    fitted scorers (what ``thresher score`` and ``thresher run`` print)."""
    n = manifest["counts"].get("scored", 0)
    metrics = manifest.get("metrics", {})
    lines = []
    for label, dropped in manifest["counts"].get("filtered", {}).items():
        lines.append(f"{label}: dropped {dropped:,}")
    for family, s in metrics.get("rules", {}).items():
        if "languages" in s:
            top = ", ".join(f"{lang} {c / max(n, 1):.1%}" for lang, c in list(s["languages"].items())[:6])
            lines.append(f"{'langid':<8} {top}")
            continue
        top = ", ".join(f"{r} {c:,}" for r, c in list(s["failed_by_rule"].items())[:4])
        lines.append(f"{family:<8} pass {s['passed'] / max(n, 1):6.1%}   fails: {top or '-'}")
    for name, report in metrics.get("fit", {}).items():
        folds = [report[k] for k in sorted(report) if k.startswith("fold_")] if isinstance(report, dict) else []
        for i, r in enumerate(folds or [report]):
            held = r.get("heldout") if isinstance(r, dict) else None
            if held:
                label = f"{name} (fold {i})" if folds else name
                lines.append(f"{label:<8} held-out accuracy {held['accuracy']:.3f}, AUC {held['auc']:.3f} "
                             f"({held['records']} records)")
    return lines
