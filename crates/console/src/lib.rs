//! Strom's web console: a single page (`index.html`), its script (`app.js`, plain JavaScript,
//! no framework) and its styles (`style.css`), embedded in the binary with `include_bytes!` so
//! that `cargo build` alone makes a binary that serves them: no Node, no CDN, no build step.
//!
//! The page talks to the console's JSON API (`strom_http::api`, under `/api/`); `strom_http`'s
//! `console` module serves these files at `/` and `/assets/{file}` with [`asset`].

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// A strong validator of `bytes` (a hash, quoted as HTTP wants it), for `ETag`.
    pub etag: &'static str,
}

/// The page every route of the single-page application starts from.
pub const INDEX: &str = "index.html";

/// Every file the console has: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        INDEX,
        "text/html; charset=utf-8",
        include_bytes!("../assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
];

/// The embedded file called `path` (`index.html`, `app.js`, `style.css`), if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    static ETAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        (ASSETS.iter())
            .map(|(_, _, bytes)| format!("\"{:016x}\"", fnv1a(bytes)))
            .collect()
    });
    let index = ASSETS.iter().position(|(name, _, _)| *name == path)?;
    let (_, content_type, bytes) = ASSETS[index];
    Some(Asset {
        bytes,
        content_type,
        etag: etags[index].as_str(),
    })
}

/// FNV-1a, 64 bits: enough to tell one build's file from another's.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_with_its_type() {
        let index = asset("index.html").expect("index.html is embedded");
        assert!(index.content_type.starts_with("text/html"));
        assert!(index.bytes.starts_with(b"<!doctype html>"));
        assert!(asset("app.js")
            .expect("app.js")
            .content_type
            .contains("javascript"));
        assert!(asset("style.css")
            .expect("style.css")
            .content_type
            .contains("css"));
        assert_ne!(
            asset("app.js").unwrap().etag,
            asset("style.css").unwrap().etag
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        assert_eq!(asset("missing.js"), None);
        assert_eq!(asset("../Cargo.toml"), None);
        assert_eq!(asset(""), None);
    }
}
