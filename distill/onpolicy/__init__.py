"""On-policy distillation: the student writes, a teacher scores every token it wrote, the student moves toward it.

Usage:
    from distill.onpolicy.loss import sampled_reverse_kl, topk_reverse_kl
    from distill.onpolicy.forward import completion_logits
    from distill.onpolicy.self_teacher import self_teacher_scores
"""
