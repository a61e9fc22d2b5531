//! Any key file: parsing never panics (the PKCS#8 decoder of ed25519-zebra unwraps on malformed
//! input, so Phalanx must never reach it with one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_crypto::Keypair;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Keypair::from_pem(text);
    }
});
