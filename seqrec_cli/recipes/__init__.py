"""Model recipes: what training and scoring need to know about each model."""
