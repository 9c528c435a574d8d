"""Knowledge distillation loss (Hinton et al.): soft targets at a temperature plus hard labels."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels).

    ``teacher_logits`` may stack several teachers on dim 0 ([T, N, C]); their soft targets are averaged.
    """
    hard = F.cross_entropy(student_logits, labels)
    if teacher_logits is None or alpha == 0.0:
        return hard
    if teacher_logits.dim() == 3:
        soft_targets = F.softmax(teacher_logits / temperature, dim=-1).mean(0)
    else:
        soft_targets = F.softmax(teacher_logits / temperature, dim=-1)
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    soft = F.kl_div(log_student, soft_targets, reduction="batchmean") * temperature**2
    return alpha * soft + (1.0 - alpha) * hard
