//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/`) through the
//! fuzz targets' functions on every test run, so an input that once crashed
//! kekd stays fixed without needing cargo-fuzz or nightly here.

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("recording", kekd::fuzzing::recording),
    ("envelope_json", kekd::fuzzing::envelope_json),
    ("config", kekd::fuzzing::config),
    ("api_request", kekd::fuzzing::api_request),
];

#[test]
fn the_committed_fuzz_corpus_is_handled_without_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            target(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "{name}: the corpus has seeds");
    }
}
