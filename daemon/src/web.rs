//! The web view: a single-page app (plain JavaScript, no build step) and uPlot, embedded in the binary and
//! served on labd's own endpoint. Page paths (`/runs/<id>`, `/compare?ids=...`, ...) all answer the same page,
//! which routes on the path, so every view is a URL. The assets carry no data: they are served without the
//! token; the page asks for the token when the API answers 401 and sends it with every request.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../web/index.html");

/// Every asset by name: (name, content type, bytes). Nothing else is served, so no path can leave the set.
const ASSETS: [(&str, &str, &[u8]); 5] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../web/vendor/uPlot.LICENSE"),
    ),
];

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The page and its assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new().route("/ui/{name}", get(asset));
    for page in [
        "/",
        "/runs",
        "/runs/{id}",
        "/compare",
        "/groups",
        "/sweeps",
        "/sweeps/{id}",
        "/benchmarks",
        "/benchmarks/{id}",
        "/live",
    ] {
        r = r.route(page, get(index));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_it_loads_and_they_exist() {
        for needed in [
            "/ui/app.js",
            "/ui/app.css",
            "/ui/uPlot.iife.min.js",
            "/ui/uPlot.min.css",
        ] {
            assert!(INDEX.contains(needed), "{needed}");
            let name = needed.trim_start_matches("/ui/");
            assert!(ASSETS.iter().any(|(n, _, b)| *n == name && !b.is_empty()));
        }
    }
}
