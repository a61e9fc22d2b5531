//! The published API description lists every route the node serves.

#[test]
fn openapi_lists_every_route() {
    let api = include_str!("../src/api/mod.rs");
    let doc: serde_json::Value = serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let routes: Vec<&str> = api.split(".route(\"").skip(1).filter_map(|s| s.split('"').next()).collect();
    assert!(routes.len() > 10, "found only {routes:?}");
    for r in routes {
        assert!(doc["paths"].get(r).is_some(), "{r} is served but missing from openapi.json");
    }
}
