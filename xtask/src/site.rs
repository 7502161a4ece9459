//! `cargo xtask dist`: the web lab as a self-contained static site, for hosts that serve files
//! and nothing else (a university web space, GitHub Pages, an object store behind a CDN).
//!
//! The site is trunk's release build (`dist/`) plus:
//! - `sw.js` (from `web/www/site/sw.js`, with the build's version and file list written in): a
//!   service worker that adds the COOP/COEP headers where the host cannot, and keeps every file
//!   of the build for offline use;
//! - `isolate.js` (from `web/www/site/isolate.js`): registers it, reloads the page once into
//!   isolation, and offers a new build when one is deployed — a `<script>` at the top of
//!   `index.html`'s head, next to `<meta name="conlab-build">` naming the version;
//! - `_headers`: the two headers for hosts that read such a file (Netlify, Cloudflare Pages);
//! - `.nojekyll`: GitHub Pages serves the files as they are.
//!
//! The version is a hash of every file the site serves (sw.js aside), so any change to the build
//! makes a new sw.js, which is what browsers compare to find an update.

use std::path::{Path, PathBuf};

use crate::Result;

/// Files of trunk's output the site leaves out: its lock and the bindings' type declarations.
const SKIPPED: [&str; 2] = [".trunk-lock", "conlab-web.d.ts"];

const HEADERS_FILE: &str =
    "/*\n  Cross-Origin-Opener-Policy: same-origin\n  Cross-Origin-Embedder-Policy: require-corp\n";

/// What [`assemble`] built.
#[derive(Debug)]
pub struct Site {
    pub version: String,
    /// Every file the service worker caches, relative to the site's root (`./` is the page).
    pub files: Vec<String>,
    pub bytes: u64,
}

/// Builds the static site in `out` (replacing it) from trunk's output `dist`, with the
/// service worker and page script from `templates`.
pub fn assemble(dist: &Path, templates: &Path, out: &Path) -> Result<Site> {
    if !dist.join("index.html").is_file() {
        return Err(format!("{} has no index.html: build the lab first", dist.display()));
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("clearing {}: {e}", out.display()))?;
    }
    let mut files = Vec::new();
    copy_tree(dist, dist, out, &mut files)?;
    write(&out.join("isolate.js"), &read(&templates.join("isolate.js"))?)?;
    files.push("isolate.js".into());
    files.sort();
    let version = version_of(out, &files)?;
    let page = read(&out.join("index.html"))?;
    write(&out.join("index.html"), &with_site_script(&page, &version)?)?;
    let mut cached: Vec<String> = vec!["./".into()];
    cached.extend(files.iter().cloned());
    let worker = with_build(&read(&templates.join("sw.js"))?, &version, &cached)?;
    write(&out.join("sw.js"), &worker)?;
    write(&out.join("_headers"), HEADERS_FILE)?;
    write(&out.join(".nojekyll"), "")?;
    let mut bytes = 0;
    for file in &files {
        bytes += std::fs::metadata(out.join(file)).map_err(|e| format!("{file}: {e}"))?.len();
    }
    Ok(Site { version, files: cached, bytes })
}

fn copy_tree(root: &Path, from: &Path, to: &Path, files: &mut Vec<String>) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|entry| entry.ok()).map(|entry| entry.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if SKIPPED.contains(&name.as_str()) {
            continue;
        }
        let target = to.join(&name);
        if path.is_dir() {
            copy_tree(root, &path, &target, files)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| format!("copying {}: {e}", path.display()))?;
            let relative = path.strip_prefix(root).expect("under the root");
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// FNV-1a (64 bits) over each file's path and bytes, in order: any change, a new version.
fn version_of(root: &Path, files: &[String]) -> Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let bytes = std::fs::read(root.join(file)).map_err(|e| format!("reading {file}: {e}"))?;
        for byte in file.as_bytes().iter().chain([0u8].iter()).chain(bytes.iter()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{hash:016x}"))
}

/// `index.html` with the build's version and the page script first in its head.
fn with_site_script(page: &str, version: &str) -> Result<String> {
    let anchor = "<meta charset=\"utf-8\">";
    let at = page.find(anchor).ok_or("index.html has no <meta charset=\"utf-8\">")? + anchor.len();
    let added =
        format!("\n  <meta name=\"conlab-build\" content=\"{version}\">\n  <script src=\"./isolate.js\"></script>");
    Ok(format!("{}{added}{}", &page[..at], &page[at..]))
}

/// The service worker's template with its version and file list written in.
fn with_build(template: &str, version: &str, files: &[String]) -> Result<String> {
    let list = files.iter().map(|file| format!("'{file}'")).collect::<Vec<_>>().join(", ");
    let mut worker = String::new();
    let (mut versioned, mut listed) = (false, false);
    for line in template.lines() {
        if line == "const VERSION = 'dev';" {
            worker.push_str(&format!("const VERSION = '{version}';"));
            versioned = true;
        } else if line == "const FILES = [];" {
            worker.push_str(&format!("const FILES = [{list}];"));
            listed = true;
        } else {
            worker.push_str(line);
        }
        worker.push('\n');
    }
    if !(versioned && listed) {
        return Err("sw.js: the template lost its `const VERSION = 'dev';` or `const FILES = [];` line".into());
    }
    Ok(worker)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_dist(dir: &Path, style: &str) {
        std::fs::create_dir_all(dir.join("app")).unwrap();
        std::fs::write(dir.join("index.html"), "<html><head>\n  <meta charset=\"utf-8\">\n</head></html>").unwrap();
        std::fs::write(dir.join("style.css"), style).unwrap();
        std::fs::write(dir.join("app/main.js"), "main").unwrap();
        std::fs::write(dir.join(".trunk-lock"), "").unwrap();
        std::fs::write(dir.join("conlab-web.d.ts"), "types").unwrap();
    }

    fn templates() -> PathBuf {
        crate::root().join("web/www/site")
    }

    #[test]
    fn the_site_is_the_build_with_its_worker_page_script_and_header_files() {
        let scratch = std::env::temp_dir().join(format!("conlab-site-test-{}", std::process::id()));
        let (dist, out) = (scratch.join("dist"), scratch.join("site"));
        fake_dist(&dist, "body {}");
        let site = assemble(&dist, &templates(), &out).unwrap();
        assert_eq!(site.files, ["./", "app/main.js", "index.html", "isolate.js", "style.css"]);
        let worker = std::fs::read_to_string(out.join("sw.js")).unwrap();
        assert!(worker.contains(&format!("const VERSION = '{}';", site.version)), "{worker}");
        assert!(worker.contains("const FILES = ['./', 'app/main.js', 'index.html', 'isolate.js', 'style.css'];"));
        let page = std::fs::read_to_string(out.join("index.html")).unwrap();
        let meta = format!("<meta name=\"conlab-build\" content=\"{}\">", site.version);
        assert!(page.find(&meta).unwrap() < page.find("<script src=\"./isolate.js\"></script>").unwrap(), "{page}");
        assert!(std::fs::read_to_string(out.join("_headers"))
            .unwrap()
            .contains("Cross-Origin-Embedder-Policy: require-corp"));
        assert!(
            out.join(".nojekyll").is_file()
                && !out.join(".trunk-lock").exists()
                && !out.join("conlab-web.d.ts").exists()
        );

        // Rebuilt unchanged: the same version. One byte changed: a new one.
        assert_eq!(assemble(&dist, &templates(), &out).unwrap().version, site.version);
        fake_dist(&dist, "body { }");
        assert_ne!(assemble(&dist, &templates(), &out).unwrap().version, site.version);
        std::fs::remove_dir_all(&scratch).unwrap();
    }

    #[test]
    fn a_build_without_a_page_is_a_clear_error() {
        let scratch = std::env::temp_dir().join(format!("conlab-site-empty-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let error = assemble(&scratch, &templates(), &scratch.join("site")).unwrap_err();
        assert!(error.contains("has no index.html: build the lab first"), "{error}");
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
