"""The offline task families: problems with gold answers, the teacher's traces, and their step checks.

Usage:
    from distill.offline.sets import from_spec        # offline:<split>?n=N&mix=... -> Problem records
    from distill.offline.families import respond      # a genuine step-by-step trace for a known question
    from distill.offline.checks import CHECKS         # each family's own soundness checks

A building block shared by the offline teacher (generate), the filter's soundness checks and
eval's chance rates; no stage owns it.
"""
