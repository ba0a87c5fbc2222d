//! The saga pictures as a reader of the docs gets them: builds the rustdoc of
//! `sagaflow-examples` and looks at the HTML pages of the sagas and their steps.
//!
//! The docs are built into `target/doc-check` rather than the usual target
//! directory, which the `cargo test` running this test keeps locked. The first
//! build takes a while; later ones are incremental.

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Builds the docs of the examples once per test binary and returns where they are.
fn docs() -> &'static Path {
    static DOCS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        let target = Path::new(WORKSPACE).join("target/doc-check");
        let output = Command::new(env!("CARGO"))
            .args(["doc", "-p", "sagaflow-examples", "--no-deps"])
            .current_dir(WORKSPACE)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_TERM_COLOR", "never")
            .output()
            .expect("cannot run cargo");
        assert!(
            output.status.success(),
            "`cargo doc -p sagaflow-examples --no-deps` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("doc/sagaflow_examples")
    })
}

fn read_page(path: &str) -> String {
    let file = docs().join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The committed inline picture of a saga (the `to_svg()` snapshot, kept fresh by
/// the `graphs` test of `sagaflow-examples`).
fn committed_svg(name: &str) -> String {
    let file = Path::new(WORKSPACE)
        .join("examples/tests/snapshots")
        .join(format!("{name}.svg"));
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The values of the `id` attributes in `svg`.
fn ids(svg: &str) -> Vec<&str> {
    svg.split(" id=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').expect("a closed attribute")])
        .collect()
}

struct Saga {
    /// The page's file, under the examples' docs.
    page: &'static str,
    /// The prefix of every id in its picture.
    prefix: &'static str,
    /// The committed picture it must show, `examples/tests/snapshots/<name>.svg`.
    picture: &'static str,
    /// Names of steps and compensations that the picture draws.
    names: &'static [&'static str],
    /// Whether the saga has a pivot.
    pivot: bool,
}

/// Checks that the page has a "Saga graph" section with the saga's picture,
/// inline and intact: the committed picture, drawing every step and compensation.
fn check_saga_page(saga: &Saga) {
    let html = read_page(saga.page);
    let page = saga.page;
    let heading = html
        .find("id=\"saga-graph\"")
        .unwrap_or_else(|| panic!("{page}: no \"Saga graph\" heading"));
    assert!(
        html[heading..].contains(">Saga graph</h"),
        "{page}: the saga-graph anchor is not a \"Saga graph\" heading"
    );
    assert_eq!(html.matches("<svg").count(), 1, "{page}: one <svg");
    assert_eq!(html.matches("</svg>").count(), 1, "{page}: one </svg>");
    assert!(
        !html.contains("&lt;svg"),
        "{page}: the picture was escaped as text"
    );
    let start = html.find("<svg").unwrap();
    let end = html.find("</svg>").unwrap() + "</svg>".len();
    assert!(
        start > heading,
        "{page}: the picture is not under its heading"
    );
    let svg = &html[start..end];

    // Rustdoc passed the renderer's picture through untouched.
    assert_eq!(
        svg,
        committed_svg(saga.picture),
        "{page}: the picture in the docs is not examples/tests/snapshots/{}.svg",
        saga.picture
    );
    for name in saga.names {
        assert!(
            svg.contains(&format!(">{name}</text>")),
            "{page}: {name} is not drawn"
        );
    }
    assert_eq!(
        svg.contains(">point of no return</text>"),
        saga.pivot,
        "{page}: the pivot's caption"
    );
    for banned in ["<script", "<foreignObject", "href", "<style"] {
        assert!(!svg.contains(banned), "{page}: {banned} in the picture");
    }
    let ids = ids(svg);
    assert!(!ids.is_empty(), "{page}: the picture has no ids");
    for id in ids {
        assert!(
            id.starts_with(saga.prefix),
            "{page}: id `{id}` does not start with `{}`",
            saga.prefix
        );
    }
}

const BOOK_TRIP: &[&str] = &[
    "Bank::debit_customer",
    "Airline::book_flight",
    "Hotels::book_hotel",
    "email_itinerary",
    "refund_customer",
    "cancel_flight",
    "cancel_hotel",
];

const PROVISION: &[&str] = &[
    "create_user",
    "create_vm",
    "assign_ip",
    "remove_user",
    "delete_vm",
    "release_ip",
    "audit",
];

#[test]
fn the_saga_pages_show_the_saga_graph() {
    for (page, picture, prefix, names, pivot) in [
        (
            "travel/fn.book_trip.html",
            "travel",
            "sagaflow-book_trip-",
            BOOK_TRIP,
            false,
        ),
        (
            "travel/struct.BookTripSaga.html",
            "travel",
            "sagaflow-book_trip-",
            BOOK_TRIP,
            false,
        ),
        (
            "provision/fn.provision.html",
            "provision",
            "sagaflow-provision-",
            PROVISION,
            false,
        ),
        (
            "provision/struct.ProvisionSaga.html",
            "provision",
            "sagaflow-provision-",
            PROVISION,
            false,
        ),
    ] {
        check_saga_page(&Saga {
            page,
            prefix,
            picture,
            names,
            pivot,
        });
    }
}

#[test]
fn a_step_page_says_how_the_step_is_undone() {
    // A free step's page, and a step method's section of its type's page.
    for (page, anchor, compensation) in [
        (
            "travel/struct.Airline.html",
            "id=\"method.book_flight\"",
            "#method.cancel_flight",
        ),
        (
            "travel/struct.Bank.html",
            "id=\"method.debit_customer\"",
            "#method.refund_customer",
        ),
        (
            "travel/struct.Hotels.html",
            "id=\"method.book_hotel\"",
            "#method.cancel_hotel",
        ),
        ("provision/fn.create_vm.html", "", "fn.delete_vm.html"),
    ] {
        let html = read_page(page);
        let start = html
            .find(anchor)
            .unwrap_or_else(|| panic!("{page}: no {anchor}"));
        let heading = html[start..]
            .find("id=\"saga-step")
            .map(|at| start + at)
            .unwrap_or_else(|| panic!("{page}: no \"Saga step\" heading"));
        let section = &html[heading..];
        let paragraph = &section[..section.find("</p>").expect("a paragraph")];
        assert!(
            paragraph.contains("undone by") && paragraph.contains(compensation),
            "{page}: the Saga step section does not link to {compensation}:\n{paragraph}"
        );
    }
    // The pivot's section says so.
    let html = read_page("checkout/fn.book_shipment.html");
    assert!(html.contains("point of no return"), "fn.book_shipment.html");
}

/// The HTML pages under `dir`, recursively.
fn html_pages(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            html_pages(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
}

/// The part of a page that the macros write: a step's "Saga step" section, a
/// saga function's "Saga" section, or a saga type's whole description, up to
/// the trait implementations (whose docs are the traits' own, from other
/// crates). `None` for any other page. What the user wrote above a section is
/// theirs, and not checked here.
fn generated_part(html: &str) -> Option<&str> {
    let start = if let Some(step) = html.find("id=\"saga-step\"") {
        step
    } else if let Some(saga) = html.find("id=\"saga\"") {
        saga
    } else if html.contains("id=\"saga-graph\"") {
        html.find("class=\"docblock\"")?
    } else {
        return None;
    };
    let end = [
        "id=\"trait-implementations\"",
        "id=\"synthetic-implementations\"",
        "id=\"blanket-implementations\"",
    ]
    .iter()
    .filter_map(|id| html.find(id))
    .min()
    .unwrap_or(html.len());
    Some(&html[start..end.max(start)])
}

/// Every link that the macros write into the examples' pages leads to a page
/// that exists. The docs are built with `--no-deps`, so `sagaflow`'s own pages
/// are never there: the order in which an intra-doc link from generated docs to
/// a `sagaflow` item went dead (`href="sagaflow::Runner"`), without a warning,
/// on a first `cargo doc`.
#[test]
fn no_link_the_macros_write_is_dead() {
    let mut pages = Vec::new();
    html_pages(docs(), &mut pages);
    let mut checked = 0;
    let mut dead = Vec::new();
    for page in &pages {
        let html =
            std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        let Some(part) = generated_part(&html) else {
            continue;
        };
        checked += 1;
        for rest in part.split(" href=\"").skip(1) {
            let href = &rest[..rest.find('"').expect("a closed attribute")];
            let target = href.split(['#', '?']).next().unwrap_or_default();
            if target.is_empty() || href.contains("://") {
                continue;
            }
            let file = page.parent().expect("a page in a directory").join(target);
            if !file.exists() {
                let page = page.strip_prefix(docs()).unwrap_or(page);
                dead.push(format!("{}: href=\"{href}\"", page.display()));
            }
        }
    }
    // Two sagas (function and type) and their steps.
    assert!(checked >= 8, "only {checked} generated pages found");
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}
