//! The fuzz smoke run for CI, on stable Rust: every committed corpus input of
//! every cargo-fuzz target (`fuzz/corpus/TARGET/*`) goes through the same
//! property function the target runs (`fuzz/src/lib.rs`, included here), which
//! panics when a property breaks. The fuzzers themselves need nightly; see
//! `fuzz/README.md`.

#[path = "../fuzz/src/lib.rs"]
mod properties;

use std::path::Path;

#[test]
fn every_committed_corpus_input_keeps_its_properties() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in properties::TARGETS {
        let dir = corpus.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading '{}': {e}", dir.display()))
            .map(|e| e.expect("listing the corpus").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for target '{target}'");
        for file in files {
            let data = std::fs::read(&file).expect("reading a corpus input");
            // Name the input in the failure; the property's panic follows.
            let guard = Named(&file);
            check(&data);
            std::mem::forget(guard);
        }
    }
}

/// Prints which input was running when a property panics.
struct Named<'a>(&'a Path);

impl Drop for Named<'_> {
    fn drop(&mut self) {
        eprintln!("fuzz smoke: property failed on '{}'", self.0.display());
    }
}
