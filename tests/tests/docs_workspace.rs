//! The rustdoc a newcomer builds first, `cargo doc --workspace --no-deps`, has the
//! whole library: the test kit (`sagaflow::testing`, behind the `testing`
//! feature), the guide's pages with their examples, and the macros' options.
//!
//! The docs are built into `target/doc-check`, which the `docs_html` test uses
//! too (the `cargo test` running this keeps the usual target directory locked).

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn docs() -> PathBuf {
    let target = Path::new(WORKSPACE).join("target/doc-check");
    let output = Command::new(env!("CARGO"))
        .args(["doc", "--workspace", "--no-deps"])
        .current_dir(WORKSPACE)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTDOCFLAGS")
        .output()
        .expect("cannot run cargo");
    assert!(
        output.status.success(),
        "`cargo doc --workspace --no-deps` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("doc/sagaflow")
}

fn page(docs: &Path, path: &str) -> String {
    let file = docs.join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{} is not in the docs of `cargo doc --workspace --no-deps`: {e}",
            file.display()
        )
    })
}

/// The relative `href`s of `html` that lead to a guide page, checked to exist
/// from the page at `from`.
fn guide_links_resolve(docs: &Path, from: &str, html: &str) -> usize {
    let dir = docs.join(from).parent().unwrap().to_owned();
    let mut count = 0;
    for part in html.split("href=\"").skip(1) {
        let href = &part[..part.find('"').unwrap()];
        if !href.contains("guide/") || href.starts_with("http") {
            continue;
        }
        let file = dir.join(href.split('#').next().unwrap());
        assert!(file.exists(), "{from} links `{href}`, which is not there");
        count += 1;
    }
    count
}

#[test]
fn a_plain_workspace_doc_build_has_the_test_kit_the_guide_and_the_options() {
    let docs = docs();

    // The test kit, linked from the crate root, in full.
    let root = page(&docs, "index.html");
    assert!(
        root.contains("href=\"testing/index.html\""),
        "the crate root does not list `testing`"
    );
    let testing = page(&docs, "testing/index.html");
    assert!(testing.contains("SagaTest"), "sagaflow::testing is empty");
    assert!(page(&docs, "testing/struct.SagaTest.html").contains("crash_sweep"));

    // Every page of the guide, linked from the crate root; the test kit's page
    // is the full one (with the feature on), not the note on how to get it.
    for guide_page in [
        "setup",
        "first_saga",
        "steps",
        "body",
        "errors",
        "durability",
        "testing",
        "graphs",
    ] {
        let path = format!("guide/{guide_page}/index.html");
        page(&docs, &path);
        assert!(
            root.contains(&format!("href=\"{path}\"")),
            "the crate root does not link {path}"
        );
    }
    assert!(page(&docs, "guide/testing/index.html").contains("crash_sweep"));
    assert!(guide_links_resolve(&docs, "index.html", &root) >= 8);

    // The macros' own pages teach their options, `compensate_timeout` included,
    // and their links into the guide resolve, re-exported or not.
    for (from, dir) in [
        ("attr.step.html", docs.clone()),
        ("attr.step.html", docs.join("../sagaflow_macros")),
    ] {
        let step = page(&dir, from);
        for option in [
            "compensate_timeout",
            "compensate_retry",
            "retriable",
            "pivot",
            "read_only",
        ] {
            assert!(
                step.contains(option),
                "{}: `#[step]` does not mention `{option}`",
                dir.display()
            );
        }
        assert!(guide_links_resolve(&dir, from, &step) >= 1);
    }
    let saga = page(&docs, "attr.saga.html");
    assert!(
        saga.contains("BookTripSaga::new"),
        "`#[saga]` does not say what it generates"
    );
    assert!(guide_links_resolve(&docs, "attr.saga.html", &saga) >= 1);
}
