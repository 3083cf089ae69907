"""The audit run's report section: label issues per class, the estimated noise matrix, and the flagged records and
outliers with their text, for reading by eye before removing anything."""

from __future__ import annotations

from html import escape

from thresher.report.blocks import num, section, table


def audit_section(manifest: dict) -> str:
    """Per-class counts, the noise matrix P(given | true), and the worst-scored flagged records and outliers."""
    c, m = manifest.get("counts") or {}, manifest.get("metrics") or {}
    cfg = manifest.get("config") or {}
    classes = manifest.get("classes") or []
    parts = [f'<p class="note">{num(c.get("label_issues"))} label issues by {escape(str(cfg.get("filter_by")))} '
             f'among {num(c.get("audited"))} audited records ({m.get("label_issue_rate", 0):.1%}); estimated noise '
             f'rate {m.get("estimated_noise_rate", 0):.1%}'
             + (f'; cross-validated accuracy {m["cv_accuracy"]:.3f}' if m.get("cv_accuracy") is not None else "")
             + ". Nothing was removed: select on <code>is_label_issue</code> or <code>label_quality</code> to do "
               "so.</p>"]
    dups = c.get("near_duplicates")
    if dups:
        cross = dups.get("cross_split_records")
        parts.append(f'<p class="note">near-duplicates: {num(dups["records_with_near_duplicate"])} records have one '
                     f'(<code>near_duplicate_of</code>), {num(dups["records_in_label_conflicts"])} of them under '
                     f'another label (<code>label_conflict</code>)'
                     + ('; across splits (<code>cross_split_duplicate</code>, leakage): '
                        + escape(", ".join(f"{k} {v:,}" for k, v in cross.items()) or "none")
                        if cross is not None else "") + ".</p>")
    by_class = c.get("by_class") or {}
    if by_class:
        rows = [[escape(name), num(r["records"]), num(r["label_issues"]), num(r["suggested"])]
                for name, r in by_class.items()]
        parts.append(table(["class", "records", "label issues", "suggested as this class"], rows, {1, 2, 3},
                           wrap="compact"))
    noise = manifest.get("noise_matrix")
    if noise and classes:
        parts.append("<h3>Estimated noise matrix: P(given label = row | true label = column)</h3>")
        rows = [[escape(classes[i])] + [f"{v:.1%}" for v in row] for i, row in enumerate(noise)]
        parts.append(table(["given \\ true", *classes], rows, set(range(1, len(classes) + 1)), wrap="compact"))
    for key, title in (("label_issues", "Flagged records, lowest label quality first"),
                       ("outliers", "Outliers: farthest from their nearest neighbours")):
        examples = (manifest.get("examples") or {}).get(key) or []
        if examples:
            rows = [[escape(str(e["id"])), escape(str(e["label"])), escape(str(e["suggested"])),
                     num(e.get("label_quality")), num(e.get("outlier_score")), escape(e["text"])] for e in examples]
            parts.append(f"<h3>{escape(title)}</h3>")
            parts.append(table(["id", "given", "suggested", "label quality", "outlier score", "text"], rows, {3, 4}))
    return section("audit", "Label audit", "\n".join(parts))
