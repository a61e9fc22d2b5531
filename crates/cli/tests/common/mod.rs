//! Helpers shared by the test binaries that run real node processes.

use std::net::TcpListener;
use std::process::{Command, Output};

/// Runs this build's `phalanx` with `args`.
pub fn phalanx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phalanx")).args(args).output().expect("run phalanx")
}

/// Runs `phalanx` and returns its stdout, failing the test (with its output) if it fails.
#[allow(dead_code)] // not every test binary uses it
pub fn ok(args: &[&str]) -> String {
    let out = phalanx(args);
    assert!(
        out.status.success(),
        "phalanx {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A port range base..base+n and base+100..base+100+n that is free right now, below the
/// ephemeral range (32768+ on Linux): a port there could be taken as the source port of some
/// outgoing connection while its node is down, and the node could not restart.
pub fn free_base(n: u16) -> u16 {
    let mut x = std::process::id() as u64
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for _ in 0..500 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let base = 20_000 + ((x >> 33) % 12_000) as u16;
        let all_free = (0..n).all(|i| {
            TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
        });
        if all_free {
            return base;
        }
    }
    panic!("no free port range");
}
