"""Plain-text summary of a run: record accounting, distribution metrics and composition vs a random sample."""

from __future__ import annotations


def format_summary(manifest: dict, max_groups: int = 12) -> str:
    """The table printed at the end of every selection."""
    c = manifest["counts"]
    m = manifest.get("metrics", {})
    cfg = manifest.get("config", {})
    sel = manifest.get("selection", {})
    lines = [
        f"method {cfg.get('method')} | selector {sel.get('selector')} | budget {sel.get('budget')} | "
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
