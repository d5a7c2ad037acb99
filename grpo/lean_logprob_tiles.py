"""TRL's fused log-prob head, computed in place on CPU (`batch.cpu_lean_logprob_head`).

TRL 1.16 computes the training pass's per-token log-probabilities through `ChunkedLogProbFunction`: the
262k-vocabulary projection in tiles of 32,768 columns, each tile folded into running log-sum-exp
statistics (forward) or turned into the logits' gradient (backward). Without Triton (CPU) the folding is
plain torch (`_forward_tile`, `_backward_tile`), written as ~10 out-of-place operations per tile, each
allocating and reading a tile-sized tensor: 100 MB for 768 completion tokens. The functions below
compute the same quantities in place in the tile (which TRL recomputes for every use and discards),
with one extra tile-sized buffer in the forward when the entropy is asked for. Measured on 2 CPU cores
(docs/performance.md 8.6): the head's forward and backward over 768 completion tokens 8.2 -> 7.8 s, a few
per cent of the training pass in isolation.

Same math, reassociated: the entropy's sum of p·z is summed as p·(z − m) + m·p, and the gradient as
−g·p everywhere plus g at the target. tests/test_lean_logprob_tiles.py checks log-probabilities,
entropies and gradients against TRL's tiles. Cases they do not cover (non-float32 tiles, final-logit
softcapping, the log-sum-of-squares, mean-logit and top-1 outputs, a gradient through the entropy) go to
TRL's own tile functions.
"""

import torch


def lean_forward_tile(trl_tile, tile, tile_stride, targets, running_max, sum_exp, x_sum_exp, sq_sum_exp, z_sum,
                      max_before_target, target_logit, vocab_start, n_cols, logit_scale, softcap, inv_t,
                      HAS_SOFTCAP, HAS_ENTROPY, HAS_LOG_SUM_SQ_PROBS, HAS_MEAN_LOGITS, HAS_IS_TOP1, BLOCK_SIZE):
    """TRL's `_forward_tile` (same arguments, `trl_tile` first) in place; overwrites `tile`."""
    if tile.dtype != torch.float32 or HAS_SOFTCAP or HAS_LOG_SUM_SQ_PROBS or HAS_MEAN_LOGITS or HAS_IS_TOP1:
        return trl_tile(tile, tile_stride, targets, running_max, sum_exp, x_sum_exp, sq_sum_exp, z_sum,
                        max_before_target, target_logit, vocab_start, n_cols, logit_scale=logit_scale,
                        softcap=softcap, inv_t=inv_t, HAS_SOFTCAP=HAS_SOFTCAP, HAS_ENTROPY=HAS_ENTROPY,
                        HAS_LOG_SUM_SQ_PROBS=HAS_LOG_SUM_SQ_PROBS, HAS_MEAN_LOGITS=HAS_MEAN_LOGITS,
                        HAS_IS_TOP1=HAS_IS_TOP1, BLOCK_SIZE=BLOCK_SIZE)
    z = tile
    scale = logit_scale * inv_t
    if scale != 1.0:
        z.mul_(scale)
    local = targets - vocab_start
    in_tile = (local >= 0) & (local < n_cols)
    target_z = z.gather(1, local.clamp(0, n_cols - 1).unsqueeze(1)).squeeze(1)
    target_logit.copy_(torch.where(in_tile, target_z, target_logit))
    new_max = torch.maximum(running_max, z.amax(1))
    rescale = torch.exp(running_max - new_max)
    shifted = z.sub_(new_max.unsqueeze(1))
    if HAS_ENTROPY:
        e = torch.exp(shifted)
        tile_sum = e.sum(1)
        # sum(e * z) = sum(e * (z - m)) + m * sum(e), without an e * z tensor
        e_times_shifted = torch.bmm(e.unsqueeze(1), shifted.unsqueeze(2)).view(-1)
        x_sum_exp.mul_(rescale).add_(e_times_shifted + new_max * tile_sum)
    else:
        tile_sum = shifted.exp_().sum(1)
    sum_exp.mul_(rescale).add_(tile_sum)
    running_max.copy_(new_max)


def lean_backward_tile(trl_tile, tile, tile_stride, targets, log_z, entropy, grad_logprobs, grad_entropy,
                       vocab_start, n_cols, logit_scale, softcap, inv_t, HAS_SOFTCAP, HAS_LOGPROB_GRAD,
                       HAS_ENTROPY_GRAD, BLOCK_SIZE):
    """TRL's `_backward_tile` (same arguments, `trl_tile` first): turns the tile of raw logits into the
    gradient with respect to them, in place."""
    if tile.dtype != torch.float32 or HAS_SOFTCAP or HAS_ENTROPY_GRAD:
        return trl_tile(tile, tile_stride, targets, log_z, entropy, grad_logprobs, grad_entropy, vocab_start,
                        n_cols, logit_scale=logit_scale, softcap=softcap, inv_t=inv_t, HAS_SOFTCAP=HAS_SOFTCAP,
                        HAS_LOGPROB_GRAD=HAS_LOGPROB_GRAD, HAS_ENTROPY_GRAD=HAS_ENTROPY_GRAD,
                        BLOCK_SIZE=BLOCK_SIZE)
    if not HAS_LOGPROB_GRAD:
        tile.zero_()
        return None
    scale = logit_scale * inv_t
    if scale != 1.0:
        tile.mul_(scale)
    # d(log p_target)/d(raw logit j) = scale * (1[j = target] - p_j)
    probabilities = tile.sub_(log_z.unsqueeze(1)).exp_()
    grad = grad_logprobs * scale
    probabilities.mul_(-grad.unsqueeze(1))
    local = targets - vocab_start
    rows = ((local >= 0) & (local < n_cols)).nonzero().squeeze(1)
    tile.index_put_((rows, local[rows]), grad[rows], accumulate=True)
    return None
