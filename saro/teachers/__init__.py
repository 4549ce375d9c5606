"""Teachers write reasoning chains: an OpenAI-compatible client, a local model, or the offline composer."""

from __future__ import annotations

from saro.policy import Policy
from saro.teachers.base import Teacher, TeacherConfig, TeacherJob


def make_teacher(config: TeacherConfig, policy: Policy, student: str) -> Teacher:
    """Build the configured teacher; the offline composer answers benign prompts with `answer_model` or `student`."""
    if config.kind == "http":
        from saro.teachers.http import HttpTeacher

        return HttpTeacher(config)
    from saro.teachers.local import LocalTeacher

    if config.kind == "local":
        return LocalTeacher(config.model, config.temperature, config.max_tokens, config.batch_size)
    from saro.teachers.offline import OfflineComposer

    answerer = LocalTeacher(config.answer_model or student, 0.0, config.answer_max_tokens, config.batch_size)
    return OfflineComposer(
        policy,
        answerer,
        config.benign_cites_category,
        config.answer_opening,
        config.uniform_reflection,
        config.intent_names_target,
        config.intent_label_last,
        config.corrections,
    )


__all__ = ["Teacher", "TeacherConfig", "TeacherJob", "make_teacher"]
