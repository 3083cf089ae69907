"""Sentiment LFs for Rotten Tomatoes review snippets: lexicon words a film critic uses for praise and pans.

Each LF votes when one of its words appears (whole word, case-insensitive); the negation LF flips nothing, it
simply votes "rotten" for "not good/funny/worth..." phrases. Written from general knowledge of reviews.
"""

from thresher.label.lfs import KeywordLF, RegexLF, lf

CLASSES = ["fresh", "rotten"]

# Praise.
praise_strong = KeywordLF("praise_strong", "fresh", ["masterpiece", "masterful", "brilliant", "superb", "stunning",
                                                    "triumph", "extraordinary", "magnificent", "exhilarating"])
praise_quality = KeywordLF("praise_quality", "fresh", ["excellent", "wonderful", "terrific", "marvelous", "beautiful",
                                                      "beautifully", "gorgeous", "remarkable", "impressive"])
praise_feel = KeywordLF("praise_feel", "fresh", ["moving", "touching", "heartfelt", "poignant", "charming",
                                                "delightful", "enchanting", "affecting", "tender"])
praise_fun = KeywordLF("praise_fun", "fresh", ["funny", "hilarious", "witty", "entertaining", "enjoyable",
                                              "fun", "engaging", "thrilling", "gripping"])
praise_craft = KeywordLF("praise_craft", "fresh", ["well-crafted", "well made", "well-made", "well acted",
                                                  "assured", "accomplished", "inventive", "clever", "smart",
                                                  "intelligent", "compelling", "powerful", "fascinating"])
praise_recommend = KeywordLF("praise_recommend", "fresh", ["must-see", "worth seeing", "don't miss", "best film",
                                                          "one of the best", "best of the year", "a joy",
                                                          "a pleasure", "a treat", "a gem"])
praise_perf = RegexLF("praise_performance", "fresh", [r"\b(fine|strong|great|terrific|superb) performances?\b",
                                                     r"\bwonderfully\b", r"\bexquisite(ly)?\b"])
praise_solid = KeywordLF("praise_solid", "fresh", ["solid", "satisfying", "refreshing", "rewarding", "memorable",
                                                  "irresistible", "captivating", "riveting"])

# Pans.
pan_strong = KeywordLF("pan_strong", "rotten", ["awful", "terrible", "horrible", "dreadful", "atrocious", "abysmal",
                                               "unwatchable", "disaster", "mess", "worst"])
pan_boring = KeywordLF("pan_boring", "rotten", ["boring", "dull", "tedious", "tiresome", "plodding", "lifeless",
                                               "sluggish", "bland", "flat", "yawn"])
pan_stupid = KeywordLF("pan_stupid", "rotten", ["stupid", "dumb", "silly", "idiotic", "ridiculous", "preposterous",
                                               "laughable", "inane", "pointless", "senseless"])
pan_weak = KeywordLF("pan_weak", "rotten", ["mediocre", "forgettable", "uninspired", "generic", "predictable",
                                           "clichéd", "cliched", "formulaic", "derivative", "lazy", "tired"])
pan_disappoint = KeywordLF("pan_disappoint", "rotten", ["disappointing", "disappointment", "fails", "failed",
                                                       "falls flat", "misfire", "letdown", "wasted", "waste"])
pan_mess = KeywordLF("pan_mess", "rotten", ["incoherent", "muddled", "convoluted", "clumsy", "overlong", "bloated",
                                           "pretentious", "overwrought", "heavy-handed", "shrill"])
pan_unfunny = KeywordLF("pan_unfunny", "rotten", ["unfunny", "humorless", "cheesy", "lame", "painful", "annoying",
                                                 "obnoxious", "grating", "tiresome"])
pan_negation = RegexLF("pan_negation", "rotten", [r"\b(not|never|isn't|wasn't|doesn't|nothing) (very |particularly |"
                                                  r"really |quite |that |so |)(good|funny|interesting|worth|"
                                                  r"enough|much|original|clever|scary|exciting)\b"])
pan_too = RegexLF("pan_too", "rotten", [r"\btoo (long|much|little|slow|silly|many)\b", r"\bfar too\b",
                                         r"\bneither\b.*\bnor\b"])


@lf(name="pan_rhetorical")
def pan_rhetorical(text: str) -> str | None:
    """Sarcastic questions and 'if only' wishes read as pans ('Why bother?', 'If only it were funny')."""
    lowered = text.lower()
    if lowered.startswith(("why ", "if only")) or "why bother" in lowered or "what were they thinking" in lowered:
        return "rotten"
    return None


@lf(name="praise_exclaim")
def praise_exclaim(text: str) -> str | None:
    """Short exclamations are mostly enthusiasm ('A blast!')."""
    return "fresh" if text.rstrip().endswith("!") and len(text.split()) <= 12 else None
