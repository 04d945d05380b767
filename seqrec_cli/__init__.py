"""seqrec: sequential recommendation (BERT4Rec, GRU4Rec) from the command line."""

__version__ = "0.1.0"
