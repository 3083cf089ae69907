"""LFs that write themselves: keyword LFs mined from a few labelled records, written as an ordinary LF file."""

from thresher.label.generate.keywords import GeneratedLF, generate_keyword_lfs
from thresher.label.generate.lf_file import lf_yaml, write_lf_yaml

__all__ = ["GeneratedLF", "generate_keyword_lfs", "lf_yaml", "write_lf_yaml"]
