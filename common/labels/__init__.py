"""Label schemas (named groups), label spaces over several datasets (the mask vector), targets, and the group
vocabulary (kinds, decisions, accuracy) that losses, classifier, evaluation and compare share."""
