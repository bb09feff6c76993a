"""Answer a batch of prompts with a student: local transformers decoding or an OpenAI-compatible server.

Usage:
    from distill.decode.backends import Job, LocalBackend, VllmBackend, ApiBackend
    from distill.decode.regroup import generate_regrouped

A building block: eval scores with it, finetune's dev scoring and the STaR loop's student
server sample with it; no stage owns it.
"""
