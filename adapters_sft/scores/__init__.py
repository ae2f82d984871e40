"""Scores of a model on held-out rows, shared by training (the before/after scores, evaluation
during training) and the `eval` verb (evaluation.py), so they can never disagree:

  generative.py      greedy answers against the reference (exact match or a user metric), and
                     the teacher-forced loss and perplexity on the target tokens
  classification.py  accuracy, per-class and macro precision/recall/F1, the confusion matrix
  general.py         what training cost a generative model outside its task, on general prompts
"""
