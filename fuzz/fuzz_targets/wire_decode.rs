//! Any bytes off the network: decoding never panics, and what decodes encodes back to a message
//! that decodes to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = wire::decode(data) {
        let again = wire::decode(&wire::encode(&m)).expect("a decoded message re-encodes to a valid one");
        assert_eq!(m, again);
    }
});
