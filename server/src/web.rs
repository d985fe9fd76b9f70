//! `--web`: the browser side of the demo. One address serves the browser demo over plain HTTP at `/` and upgrades
//! `/ws` to the game's WebSocket endpoint (binary messages of whole frames, the same bytes as on TCP).
//!
//! The page is plain files embedded in the binary (`server/web/`, written by the TypeScript client's build and
//! committed), so `cargo build` needs no npm.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use demo_protocol::token::TokenKey;
use packet_runtime::transport::websocket::{Page, Responder, WebSocketConfig};

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

/// The WebSocket settings of `--web`: the demo's pages, `/ws`, any origin unless `origins` lists some; with
/// `dev_tokens` (`--dev-tokens`), the development endpoint [`DEV_TOKEN_PATH`].
pub fn config(origins: &[String], dev_tokens: Option<TokenKey>) -> WebSocketConfig {
    WebSocketConfig {
        pages: pages(),
        allowed_origins: (!origins.is_empty()).then(|| origins.to_vec()),
        responder: dev_tokens.map(dev_token_responder),
        ..WebSocketConfig::default()
    }
}

/// `GET /dev-token?name=NAME` answers a login token for `NAME`, valid for [`DEV_TOKEN_TTL`]: how the browser demo
/// logs in when the server checks tokens. Development only: it hands a valid token to anyone who asks, so it exists
/// only with `--dev-tokens`. Without it the path is a `404`, which the page takes as "no token needed".
pub const DEV_TOKEN_PATH: &str = "/dev-token";
/// How long a development token is valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

fn dev_token_responder(key: TokenKey) -> Responder {
    Responder(Arc::new(move |path, query| {
        if path != DEV_TOKEN_PATH {
            return None;
        }
        let name = query.split('&').find_map(|pair| pair.strip_prefix("name="))?;
        let name = percent_decode(name)?;
        Some(Page {
            path: DEV_TOKEN_PATH.to_owned(),
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from(key.mint(&name, DEV_TOKEN_TTL)),
        })
    }))
}

/// `%XX` escapes and `+` of a query value, as `encodeURIComponent` writes them; `None` if not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16).ok()?);
                i += 3;
            }
            b'%' => return None,
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_decode_as_encode_uri_component_writes_them() {
        assert_eq!(percent_decode("alice").as_deref(), Some("alice"));
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
