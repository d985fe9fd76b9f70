//! `--web`: the browser side of the demo. One address serves the browser demo over plain HTTP at `/` and upgrades
//! `/ws` to the game's WebSocket endpoint (binary messages of whole frames, the same bytes as on TCP).
//!
//! The page is plain files embedded in the binary (`server/web/`, written by the TypeScript client's build and
//! committed), so `cargo build` needs no npm.

use bytes::Bytes;
use packet_runtime::transport::websocket::{Page, WebSocketConfig};

/// The files of the browser demo, by path.
pub fn pages() -> Vec<Page> {
    let page = |path: &str, content_type, body: &'static [u8]| Page {
        path: path.to_owned(),
        content_type,
        body: Bytes::from_static(body),
    };
    vec![
        page("/", "text/html; charset=utf-8", include_bytes!("../web/index.html")),
        page("/demo.js", "text/javascript; charset=utf-8", include_bytes!("../web/demo.js")),
    ]
}

/// The WebSocket settings of `--web`: the demo's pages, `/ws`, any origin unless `origins` lists some.
pub fn config(origins: &[String]) -> WebSocketConfig {
    WebSocketConfig {
        pages: pages(),
        allowed_origins: (!origins.is_empty()).then(|| origins.to_vec()),
        ..WebSocketConfig::default()
    }
}
