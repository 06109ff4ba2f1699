//! How far apart scores must be to mean something.
//!
//! A task embedding is computed from a finite sample of a task's rows, so two scores of one
//! query differ by sampling noise as well as by what the tasks are. `docs/METHODS.md` ("What a
//! score means") measures it in the default space: the p90 difference between the scores of
//! two random halves of one dataset against the same entry is 0.015 at half size, about 0.011
//! at full size. [`SCORE_NOISE`] is that figure rounded; [`tied_with_best`] counts the hits a
//! result list cannot tell apart from its first one.

use crate::query::Hit;

/// Scores of one query closer than this are within sampling noise of each other in the
/// default task space (scatter). Other methods have other scales (fisher and tuned scores
/// are larger), and external spaces have whatever scale their producer gave them.
pub const SCORE_NOISE: f32 = 0.01;

/// How many of `hits` (best first, as [`crate::TaskDb::nearest`] returns them) are within
/// [`SCORE_NOISE`] of the first hit, the first one included: 0 for no hits, 1 when the best
/// hit stands out. A value above 1 means the order of those hits says nothing.
pub fn tied_with_best(hits: &[Hit]) -> usize {
    let Some(best) = hits.first() else {
        return 0;
    };
    hits.iter()
        .take_while(|h| (best.score - h.score).abs() < SCORE_NOISE)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn hit(score: f32) -> Hit {
        Hit {
            id: 0,
            name: format!("h{score}"),
            version: 1,
            kind: Kind::Dataset,
            score,
            space: "s".into(),
            method: "scatter".into(),
        }
    }

    #[test]
    fn counts_the_hits_within_noise_of_the_best() {
        assert_eq!(tied_with_best(&[]), 0);
        assert_eq!(tied_with_best(&[hit(0.2)]), 1);
        assert_eq!(tied_with_best(&[hit(0.2), hit(0.15)]), 1);
        assert_eq!(
            tied_with_best(&[hit(0.2), hit(0.195), hit(0.1905), hit(0.189)]),
            3
        );
        // it stops at the first hit outside the band, even if a later one is (not sorted)
        assert_eq!(tied_with_best(&[hit(0.2), hit(0.1), hit(0.2)]), 1);
    }
}
