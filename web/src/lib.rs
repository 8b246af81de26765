//! The web SQL workspace as static files: the page, its script and its
//! styles, built from `web/app` (TypeScript, CodeMirror 6, uPlot, Vite) by
//! this crate's build script and embedded in the binary, so that `weir dev`
//! and `weir server` serve it with no other step.
//!
//! This crate owns the files and their content types only. Serving them
//! (routes, headers) belongs to the control plane, and everything the page
//! shows comes from Weir's public REST API; nothing here talks to a store.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// A file of the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    /// Its name carries a hash of its content (Vite's `assets/`), so a
    /// browser may keep it forever.
    pub immutable: bool,
}

/// The file at `path` (`/index.html`, `/assets/index-….js`), if the
/// workspace has one.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(p, bytes, content_type)| Asset {
            bytes,
            content_type,
            immutable: p.starts_with("/assets/"),
        })
}

/// The page itself, served at `/`.
pub fn index() -> Asset {
    asset("/index.html").expect("the build script always embeds index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_styles_from_embedded_files() {
        let page = std::str::from_utf8(index().bytes).unwrap();
        assert!(page.contains("<div id=\"app\">"));
        let mut refs = 0;
        for part in page.split("\"/assets/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            let a = asset(&format!("/assets/{name}"))
                .unwrap_or_else(|| panic!("{name} is not embedded"));
            assert!(a.immutable);
            assert!(a.content_type == "text/javascript" || a.content_type == "text/css");
            refs += 1;
        }
        assert!(refs >= 2, "the page names its script and its styles");
        assert!(asset("/nothing.js").is_none());
    }
}
