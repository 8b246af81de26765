//! Builds the workspace page (web/app) with npm and Vite into OUT_DIR and
//! writes `assets.rs`, the list of files the crate embeds. npm runs only when
//! the page's sources change; `npm ci` only when the lock file does.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // At run time: a build script binary may be reused by another checkout
    // (a shared CARGO_TARGET_DIR), so the compile-time path can be stale.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let app = Path::new(&manifest).join("app");
    for p in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", app.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=WEIR_NPM");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out.join("dist");
    let npm = std::env::var("WEIR_NPM").unwrap_or_else(|_| "npm".into());

    let lock = app.join("package-lock.json");
    let installed = app.join("node_modules/.package-lock.json");
    let stale = match (modified(&lock), modified(&installed)) {
        (Some(l), Some(i)) => l > i,
        _ => true,
    };
    if stale {
        run(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&app),
            "npm ci (installs the workspace page's packages from web/app/package-lock.json)",
        );
    }
    run(
        Command::new(&npm)
            .args(["run", "build", "--silent"])
            .env("WEIR_WEB_OUT", &dist)
            .current_dir(&app),
        "npm run build (builds the workspace page with Vite)",
    );

    let mut files = vec![];
    walk(&dist, &dist, &mut files);
    files.sort();
    let mut code = String::from("/// Every file of the built page: path, bytes, content type.\npub static ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for (rel, abs) in &files {
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({abs:?}), {:?}),\n",
            content_type(rel)
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("assets.rs"), code).expect("OUT_DIR is writable");
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what} failed ({s}); see its output above"),
        Err(e) => panic!(
            "{what} could not start: {e}. Weir's web workspace is built with Node.js and npm \
             (Node 20 or later); install them, or name npm with WEIR_NPM"
        ),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("the page build wrote nothing into {}", dir.display());
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).expect("under the root");
            let rel = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            out.push((rel, p.to_string_lossy().into_owned()));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "css" => "text/css",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
