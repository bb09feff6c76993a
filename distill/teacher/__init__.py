"""Talking to teacher models: the OpenAI-compatible client, reasoning capture, rate limits, and the
offline teacher server used by tests and the offline default.

Usage:
    from distill.teacher.config import TeacherConfig
"""
