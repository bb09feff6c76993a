"""Learnability: score traces by the student that will learn from them, and select traces and teachers by it.

Usage:
    distill filter traces=t.jsonl learnability.enabled=true learnability.student=smollm2 learnability.top_share=0.8
    distill filter traces=t.jsonl learnability.enabled=true learnability.student=smollm2 per_problem.max=2 per_problem.policy=learnable
    distill rank-teachers student=smollm2 traces=a.jsonl,b.jsonl

Modules: ``config`` (options, no torch), ``scores`` (the definitions), ``scorer`` (the student's
forward passes), ``store`` (the ``learnability`` field, refusal of another student's scores),
``selection`` (pure selection rules), ``filtering`` (the filter's step), ``rank`` (the verb).
Only ``scores``, ``scorer`` and the work inside ``filtering``/``rank`` import torch.
"""
