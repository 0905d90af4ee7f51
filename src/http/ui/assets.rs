//! The UI's static files, `app.js`, `browse.js` (the snapshot page's file
//! browser, selection and Restore dialog; loaded by that page only),
//! `host_search.js` (the repositories page's maintenance host search) and
//! `app.css`, compiled into the binary with `include_str!` and served at
//! `/assets/<name>`.
//!
//! Pages link them as `/assets/app.js?v=<hash>` where the hash is the
//! first 16 hex digits of the file's SHA-256: a request naming the current
//! hash may be cached for a year (`immutable`), since a new build changes
//! the URL; any other request gets a five-minute cache.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// The script: actions through the JSON API, live job updates.
pub const APP_JS: &str = include_str!("assets/app.js");
/// The snapshot page's script (needs `app.js`'s `window.RM`).
pub const BROWSE_JS: &str = include_str!("assets/browse.js");
/// The repositories page's maintenance host search (needs `app.js`'s
/// `window.RM`).
pub const HOST_SEARCH_JS: &str = include_str!("assets/host_search.js");
/// The style sheet.
pub const APP_CSS: &str = include_str!("assets/app.css");

/// Cache lifetime of a URL that names the current content hash.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache lifetime of any other asset URL.
const SHORT: &str = "public, max-age=300";

/// The content hash of a file: 16 hex digits of its SHA-256.
fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

static JS_HASH: LazyLock<String> = LazyLock::new(|| content_hash(APP_JS));
static BROWSE_JS_HASH: LazyLock<String> = LazyLock::new(|| content_hash(BROWSE_JS));
static HOST_SEARCH_JS_HASH: LazyLock<String> = LazyLock::new(|| content_hash(HOST_SEARCH_JS));
static CSS_HASH: LazyLock<String> = LazyLock::new(|| content_hash(APP_CSS));

/// The URL pages load the script from.
pub fn js_url() -> String {
    format!("/assets/app.js?v={}", *JS_HASH)
}

/// The URL the snapshot page loads its script from.
pub fn browse_js_url() -> String {
    format!("/assets/browse.js?v={}", *BROWSE_JS_HASH)
}

/// The URL the repositories page loads its host search from.
pub fn host_search_js_url() -> String {
    format!("/assets/host_search.js?v={}", *HOST_SEARCH_JS_HASH)
}

/// The URL pages load the style sheet from.
pub fn css_url() -> String {
    format!("/assets/app.css?v={}", *CSS_HASH)
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct AssetQuery {
    v: Option<String>,
}

/// `GET /assets/{name}`.
pub(super) async fn serve(
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<AssetQuery>,
) -> HttpResponse {
    let (body, content_type, hash) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8", JS_HASH.as_str()),
        "browse.js" => (
            BROWSE_JS,
            "text/javascript; charset=utf-8",
            BROWSE_JS_HASH.as_str(),
        ),
        "host_search.js" => (
            HOST_SEARCH_JS,
            "text/javascript; charset=utf-8",
            HOST_SEARCH_JS_HASH.as_str(),
        ),
        "app.css" => (APP_CSS, "text/css; charset=utf-8", CSS_HASH.as_str()),
        _ => {
            return HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("not found\n")
        }
    };
    let cache = if query.v.as_deref() == Some(hash) {
        IMMUTABLE
    } else {
        SHORT
    };
    let etag = format!("\"{hash}\"");
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut builder = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if not_modified {
        builder.finish()
    } else {
        builder.content_type(content_type).body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// Asset URLs carry the content hash; a matching request is cached for a year, others briefly.
    #[actix_web::test]
    async fn hashed_urls_are_immutable() {
        assert!(js_url().ends_with(&*JS_HASH));
        assert_eq!(JS_HASH.len(), 16);
        let req = TestRequest::get().to_http_request();
        let current = serve(
            req.clone(),
            web::Path::from("app.js".to_owned()),
            web::Query(AssetQuery {
                v: Some(JS_HASH.clone()),
            }),
        )
        .await;
        assert_eq!(current.status(), 200);
        assert_eq!(
            current.headers().get(header::CACHE_CONTROL).unwrap(),
            IMMUTABLE
        );
        let stale = serve(
            req.clone(),
            web::Path::from("app.css".to_owned()),
            web::Query(AssetQuery {
                v: Some("0000".to_owned()),
            }),
        )
        .await;
        assert_eq!(stale.headers().get(header::CACHE_CONTROL).unwrap(), SHORT);
        let missing = serve(
            req,
            web::Path::from("other.js".to_owned()),
            web::Query(AssetQuery { v: None }),
        )
        .await;
        assert_eq!(missing.status(), 404);
    }

    /// The script has no inline-script dependencies the CSP would block and reads the CSRF meta tag.
    #[test]
    fn script_reads_csrf_from_meta() {
        assert!(APP_JS.contains("meta[name=\"csrf-token\"]"));
        assert!(APP_JS.contains("X-CSRF-Token"));
        assert!(!APP_JS.contains("eval("));
    }
}
