//! The core and the application it replicates are sans-IO (docs/architecture.md, "The
//! layers"). This test fails if an async runtime, sockets, clocks, threads or unseeded
//! randomness enter either crate.

use std::path::{Path, PathBuf};

/// phalanx-core, and phalanx-app beside it: every replica executes both.
fn deterministic_crates() -> [PathBuf; 2] {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    let app = core.parent().unwrap().join("app");
    [core, app]
}

#[test]
fn core_has_no_io_dependencies() {
    for dir in deterministic_crates() {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
        for banned in
            ["tokio", "async-std", "smol", "mio", "futures", "getrandom", "rand =", "redb", "axum", "hyper"]
        {
            assert!(!deps.contains(banned), "{} must not depend on {banned}", dir.display());
        }
    }
}

#[test]
fn core_does_not_depend_on_an_application() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for app in ["phalanx-app", "phalanx-aggregate"] {
        assert!(
            !deps.contains(app),
            "consensus must stay generic over the application, yet depends on {app}"
        );
    }
}

#[test]
fn core_sources_use_no_io() {
    let banned = [
        "std::net",
        "std::fs",
        "std::thread",
        "std::time",
        "SystemTime",
        "Instant::now",
        "tokio",
        "thread_rng",
        "OsRng",
        "std::process",
        "std::io::stdin",
        "RandomState",
        "HashMap::new",
    ];
    let mut stack: Vec<PathBuf> = deterministic_crates().iter().map(|d| d.join("src")).collect();
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for b in banned {
                    assert!(
                        !text.contains(b),
                        "{} uses {b}: the core must stay sans-IO and deterministic",
                        path.display()
                    );
                }
                // A HashMap iterates in its hasher's order: only the fixed `UniformHasher`
                // keeps that order the same on every run.
                for line in text.lines().filter(|l| l.contains("HashMap<")) {
                    assert!(
                        line.contains("UniformHasher"),
                        "{}: a HashMap without the fixed hasher iterates differently on every run: {line}",
                        path.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "found only {checked} source files");
}
