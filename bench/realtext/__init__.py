"""Labelled benchmark sets built from real text found on this machine (issue 18).

- `sources`: real documents (docs, man pages, code, configs, Chinese) cut at natural boundaries,
  with near-duplicates among them removed by a measure independent of ours;
- `dedup_set`: near-dedup set (planted crawl-like copies, hard negatives), tune/heldout parts;
- `langid_set`: language-ID set from the machine's gettext catalogs, English docs and code.

The runner comparing our dedup CLI with datatrove is bench/realtext_dedup.py.
"""
