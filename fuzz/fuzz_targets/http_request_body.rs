//! Any body POSTed to /v1/submit: parsing and conversion into a signed request never panic, and
//! every accepted request survives the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_core::wire;
use phalanx_node::api::RequestJson;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = serde_json::from_slice::<RequestJson>(data) else { return };
    if let Ok(req) = parsed.to_request() {
        let _ = wire::check_request(&req);
        let m = wire::Message::Request(req);
        if let Ok(back) = wire::decode(&wire::encode(&m)) {
            assert_eq!(back, m);
        }
    }
});
