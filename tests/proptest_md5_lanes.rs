//! `md5_lanes` against the `md-5` crate on random input: random lane counts (the engine uses 1
//! and `LANES`; the others pin that nothing depends on 8), random message lengths across block
//! boundaries, messages split into random parts, and `digest_prefixed` with equal-length and
//! mixed-length prefixes. The unit tests in src/md5_lanes.rs walk every length up to 200 with
//! fixed seeds; this explores further on every run.

use md5::{Digest, Md5};
use motp::md5_lanes::{digest, digest_prefixed};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn reference(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Each message split in two at `cut % (len + 1)`, hashed with `N` lanes.
fn check_split<const N: usize>(messages: &[Vec<u8>], cuts: &[usize]) -> Result<(), TestCaseError> {
    let parts: [[&[u8]; 2]; N] = std::array::from_fn(|i| {
        let (head, tail) = messages[i].split_at(cuts[i] % (messages[i].len() + 1));
        [head, tail]
    });
    let lanes: [&[&[u8]]; N] = std::array::from_fn(|i| &parts[i][..]);
    let ours = digest(&lanes);
    for (lane, message) in messages.iter().take(N).enumerate() {
        prop_assert_eq!(ours[lane], reference(&[message]), "lane {} of {}", lane, N);
    }
    Ok(())
}

fn check_prefixed<const N: usize>(
    prefixes: &[Vec<u8>],
    suffix: &[u8],
) -> Result<(), TestCaseError> {
    let refs: [&[u8]; N] = std::array::from_fn(|i| &prefixes[i][..]);
    let ours = digest_prefixed(&refs, suffix);
    for (lane, prefix) in prefixes.iter().take(N).enumerate() {
        prop_assert_eq!(
            ours[lane],
            reference(&[prefix, suffix]),
            "lane {} of {}",
            lane,
            N
        );
    }
    Ok(())
}

/// Runs `$check::<N>` for the lane count `$n` chosen at random.
macro_rules! with_lanes {
    ($n:expr, $check:ident, $($arg:expr),*) => {
        match $n {
            1 => $check::<1>($($arg),*),
            2 => $check::<2>($($arg),*),
            3 => $check::<3>($($arg),*),
            4 => $check::<4>($($arg),*),
            5 => $check::<5>($($arg),*),
            8 => $check::<8>($($arg),*),
            _ => $check::<16>($($arg),*),
        }
    };
}

fn lane_count() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 3, 4, 5, 8, 16])
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn digest_matches_md5_in_every_lane(
        lanes in lane_count(),
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 16),
        cuts in prop::collection::vec(any::<usize>(), 16),
    ) {
        with_lanes!(lanes, check_split, &messages, &cuts)?;
    }

    #[test]
    fn digest_prefixed_matches_md5_with_equal_prefix_lengths(
        lanes in lane_count(),
        prefix_len in 0usize..140,
        seeds in prop::collection::vec(prop::collection::vec(any::<u8>(), 140), 16),
        suffix in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let prefixes: Vec<Vec<u8>> = seeds.iter().map(|s| s[..prefix_len].to_vec()).collect();
        with_lanes!(lanes, check_prefixed, &prefixes, &suffix)?;
    }

    #[test]
    fn digest_prefixed_matches_md5_with_mixed_prefix_lengths(
        lanes in lane_count(),
        prefixes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..140), 16),
        suffix in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        with_lanes!(lanes, check_prefixed, &prefixes, &suffix)?;
    }
}
