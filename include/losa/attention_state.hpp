#pragma once
// The LSE merge, CPU twin of src/cuda/state.cuh.
//
// A partial attention state of one query row over a set of keys is (o, lse): o the normalised
// output, lse = log(sum_j exp(s_j)) with s_j the *scaled* scores, natural log (FlashAttention's
// convention; FlashInfer's log2-based lse is this times 1/ln 2). An empty set of keys is the
// state (o = 0, lse = -inf); merging with it is the identity, merging two empties gives an empty.

namespace losa {

/// o = (e^lse_a o_a + e^lse_b o_b) / (e^lse_a + e^lse_b), lse = log(e^lse_a + e^lse_b),
/// computed in double. o may alias o_a or o_b. o_*: [head_dim].
void merge_state(const float* o_a, float lse_a, const float* o_b, float lse_b, int head_dim,
                 float* o, float* lse);

/// Share of a state's mass below which subtract_state leaves nothing. The GPU computes both
/// states with bf16 probabilities (relative error ~2^-9 each), and the difference carries that
/// error over the remainder's share: below 5% it would be more than ~8% of the result, so the
/// remainder (at most 5% of the mass) is dropped instead, on both backends alike.
constexpr double kSubtractEmptyBelow = 0.05;

/// The part of state a whose keys are not in state b, where b's keys are a subset of a's and the
/// query is the same: o = (e^lse_a o_a - e^lse_b o_b) / (e^lse_a - e^lse_b), computed in double.
/// Empty (o = 0, lse = -inf) where b holds all but kSubtractEmptyBelow of a's mass; a itself
/// where b is empty. o may alias o_a or o_b.
void subtract_state(const float* o_a, float lse_a, const float* o_b, float lse_b, int head_dim,
                    float* o, float* lse);

}  // namespace losa
