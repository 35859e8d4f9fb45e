"""Statistical comparison of methods over blocks (dataset × grouping).

The pipeline follows Demšar (2006) as autorank and fuzzbench apply it: aggregate seeds
(mean), build a blocks × methods matrix, rank within blocks (1 = best), Friedman omnibus
test, then Nemenyi post-hoc and a critical-difference (CD) diagram, with Wilcoxon–Holm
pairwise tests as the alternative table. See ``docs/methods.md`` §8.5.
"""

from __future__ import annotations

from medfairx.stats.cd import (
    NON_INDEPENDENCE,
    Comparison,
    compare_methods,
    draw_cd_diagram,
)
from medfairx.stats.posthoc import (
    FriedmanResult,
    critical_difference,
    friedman_test,
    holm_adjust,
    nemenyi,
    q_alpha,
    wilcoxon_holm,
)
from medfairx.stats.ranking import (
    BlockMatrix,
    average_ranks,
    block_matrix,
    rank_within_blocks,
    seed_means,
)

__all__ = [
    "NON_INDEPENDENCE",
    "BlockMatrix",
    "Comparison",
    "FriedmanResult",
    "average_ranks",
    "block_matrix",
    "compare_methods",
    "critical_difference",
    "draw_cd_diagram",
    "friedman_test",
    "holm_adjust",
    "nemenyi",
    "q_alpha",
    "rank_within_blocks",
    "seed_means",
    "wilcoxon_holm",
]
