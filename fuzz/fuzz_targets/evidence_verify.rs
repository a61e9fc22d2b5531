//! Any report a member could order: decoding and verifying the evidence inside never panics,
//! whatever its nested certificates, counts and indices claim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_core::evidence::Report;
use phalanx_crypto::{Keypair, digest};

fuzz_target!(|data: &[u8]| {
    let Ok(Report::Evidence(ev)) = Report::decode(data) else { return };
    let members: Vec<_> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32]).public()).collect();
    let cluster = digest(b"fuzz-cluster");
    let _ = ev.verify(&cluster, &members, false);
    let _ = ev.verify(&cluster, &members, true);
});
