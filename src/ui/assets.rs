//! The dashboard's embedded assets: the stylesheet and the app's ES modules, compiled into
//! the binary (no CDN, no build step) and served from `/ui/app.css` and `/ui/js/…`.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(css).service(js);
}

const CSS: &str = include_str!("assets/app.css");

/// Every module under `/ui/js/`, by its path there.
const MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("assets/js/main.js")),
    ("lib.js", include_str!("assets/js/lib.js")),
    (
        "components/chart.js",
        include_str!("assets/js/components/chart.js"),
    ),
    (
        "components/jobforms.js",
        include_str!("assets/js/components/jobforms.js"),
    ),
    (
        "components/runs.js",
        include_str!("assets/js/components/runs.js"),
    ),
    ("pages/audit.js", include_str!("assets/js/pages/audit.js")),
    (
        "pages/browsers.js",
        include_str!("assets/js/pages/browsers.js"),
    ),
    ("pages/flags.js", include_str!("assets/js/pages/flags.js")),
    ("pages/job.js", include_str!("assets/js/pages/job.js")),
    ("pages/jobs.js", include_str!("assets/js/pages/jobs.js")),
    ("pages/live.js", include_str!("assets/js/pages/live.js")),
    (
        "pages/notifications.js",
        include_str!("assets/js/pages/notifications.js"),
    ),
    (
        "pages/overview.js",
        include_str!("assets/js/pages/overview.js"),
    ),
    ("pages/quotas.js", include_str!("assets/js/pages/quotas.js")),
    ("pages/run.js", include_str!("assets/js/pages/run.js")),
    ("pages/runs.js", include_str!("assets/js/pages/runs.js")),
];

#[get("/ui/app.css")]
async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(CSS)
}

#[get("/ui/js/{module:.+}")]
async fn js(module: web::Path<String>) -> HttpResponse {
    match MODULES.iter().find(|(path, _)| *path == module.as_str()) {
        Some((_, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::MODULES;

    /// Every module on disk is served, and every relative import of a module names one that
    /// is: a page added without its line here would load as a 404 and break the app.
    #[test]
    fn every_module_is_served_and_every_import_resolves() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ui/assets/js");
        let mut on_disk = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "js") {
                    on_disk.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = MODULES.iter().map(|(p, _)| p.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served);
        for (path, body) in MODULES {
            let dir = std::path::Path::new(path).parent().unwrap();
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit(" from ").next().unwrap();
                let spec = spec.trim().trim_end_matches(';').trim_matches('\'');
                let mut target = dir.to_path_buf();
                for part in spec.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            target.pop();
                        }
                        p => target.push(p),
                    }
                }
                let target = target.to_string_lossy().into_owned();
                assert!(
                    MODULES.iter().any(|(p, _)| *p == target),
                    "{path} imports {spec}, which is not served"
                );
            }
        }
    }
}
