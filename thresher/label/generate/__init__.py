"""LFs that write themselves from a few labelled records -- keyword LFs, nearest-centroid and zero-shot embedding
LFs, prompted LM LFs -- written as an ordinary LF file."""

from thresher.label.generate.generated import GeneratedLF, LFRefused
from thresher.label.generate.keywords import generate_keyword_lfs
from thresher.label.generate.lf_file import lf_yaml, write_lf_yaml
from thresher.label.generate.prompted import generate_prompt_lf
from thresher.label.generate.prototypes import generate_centroid_lf, generate_zero_shot_lf

__all__ = ["GeneratedLF", "LFRefused", "generate_keyword_lfs", "generate_centroid_lf", "generate_zero_shot_lf",
           "generate_prompt_lf", "lf_yaml",
           "write_lf_yaml"]
