//! How far apart scores must be to mean something.
//!
//! A task embedding is computed from a finite sample of a task's rows, so two scores of one
//! query differ by sampling noise as well as by what the tasks are. `docs/METHODS.md` ("What a
//! score means", `scripts/quality/score_scale.py`) measures it: the p90 difference between the
//! scores of two random halves of one dataset against the same entry is 0.007 at half size in
//! the default space (`scatter-kmeans-absdiff`), about 0.005 at full size — [`SCORE_NOISE`];
//! it was 0.015 (about 0.01 at full size) in the previous default's library-centred space.
//! [`score_noise`] picks the figure for a space, [`tied_with_best`] counts the hits a result
//! list cannot tell apart from its first one.

use crate::search::Hit;

/// Scores of one query closer than this are within sampling noise of each other in the
/// default task space (scatter, `scatter-kmeans-absdiff:…`). Other methods have other scales
/// (fisher and tuned scores are larger), and external spaces have whatever scale their
/// producer gave them.
pub const SCORE_NOISE: f32 = 0.005;

/// The measured sampling noise of scores in the space a hit came from: [`SCORE_NOISE`] in
/// today's default scatter space, 0.01 in other scatter spaces (measured in the previous
/// default, library-centred, design), `None` for other methods and external spaces (not
/// measured).
pub fn score_noise(hit: &Hit) -> Option<f32> {
    if hit.method != "scatter" {
        return None;
    }
    Some(if hit.space.starts_with("scatter-kmeans-absdiff:") {
        SCORE_NOISE
    } else {
        0.01
    })
}

/// How many of `hits` (best first, as [`crate::TaskDb::nearest`] returns them) are within
/// `noise` of the first hit, the first one included: 0 for no hits, 1 when the best hit stands
/// out. A value above 1 means the order of those hits says nothing.
pub fn tied_within(hits: &[Hit], noise: f32) -> usize {
    let Some(best) = hits.first() else {
        return 0;
    };
    hits.iter()
        .take_while(|h| (best.score - h.score).abs() < noise)
        .count()
}

/// [`tied_within`] the noise of the first hit's space ([`score_noise`]); 0 when it is not
/// measured for that space.
pub fn tied_with_best(hits: &[Hit]) -> usize {
    match hits.first().and_then(score_noise) {
        Some(noise) => tied_within(hits, noise),
        None => 0,
    }
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
