//! The bounded runs of the fuzz targets in the stable test suite: a
//! target's property over each of its seeds (fuzz/seeds/TARGET), then over
//! a few thousand inputs proptest derives from them by flipping, inserting,
//! deleting and cutting bytes, with proptest's shrinking on a failure. The
//! fuzzers' million runs are in docs/fuzzing.md; these keep what they showed
//! true in every `cargo test`.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The seed inputs of `target`, in name order.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a seed").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seed", dir.display());
    files
        .iter()
        .map(|f| std::fs::read(f).expect("a readable seed"))
        .collect()
}

/// One edit of an input.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    CutAt(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::CutAt),
    ]
}

fn apply(mut input: Vec<u8>, edits: Vec<Edit>) -> Vec<u8> {
    for edit in edits {
        let len = input.len();
        match edit {
            Edit::Set(at, b) if len > 0 => input[at % len] = b,
            Edit::Insert(at, b) => input.insert(at % (len + 1), b),
            Edit::Remove(at) if len > 0 => {
                input.remove(at % len);
            }
            Edit::CutAt(at) => input.truncate(at % (len + 1)),
            Edit::Set(..) | Edit::Remove(_) => {}
        }
    }
    input
}

/// Runs `check` on every seed of `target`, then on `cases` inputs derived
/// from them (a fixed sequence: the same inputs every run).
pub fn run(target: &str, cases: u32, check: impl Fn(&[u8])) {
    let seeds = seeds(target);
    for seed in &seeds {
        check(seed);
    }
    let inputs = (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit(), 1..6),
    )
        .prop_map(|(seed, edits)| apply(seed, edits));
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(failure) = runner.run(&inputs, |input| {
        check(&input);
        Ok(())
    }) {
        panic!("{target}: {failure}");
    }
}
