"""Text tools shared by every layer above: word matching, the clinical lexicon, sentence embeddings.

Nothing here knows what a case or a patient is; the case package and the simulator build on it.
"""
