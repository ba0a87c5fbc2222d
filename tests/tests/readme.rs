//! The README cannot drift from code that compiles: each of its Rust snippets is
//! the visible part of a doctest of the guide (`runtime/src/guide/*.md`, the
//! `sagaflow::guide` pages), which `cargo test` compiles and runs. So are its
//! tables of step kinds, options and durability levels, and its `Cargo.toml`
//! setup, copies of the guide's; and the pages it links exist.

use std::path::Path;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(path: &str) -> String {
    let file = Path::new(WORKSPACE).join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A fenced code block: its info string (`rust,no_run`), its text, and the line
/// its fence opens on (1-based).
#[derive(Debug)]
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is not closed: {open:?}");
    blocks
}

/// Whether a block is Rust as rustdoc sees it: no info string, or `rust` and
/// attributes, but not `text`, `toml`, `sh`, ...
fn is_rust(info: &str) -> bool {
    info.is_empty() || info.split(',').next() == Some("rust")
}

/// What rustdoc shows of a doctest: its lines without the hidden ones (`# ...`
/// or a lone `#`), with `##` standing for a shown `#`.
fn visible(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed == "#" || trimmed.starts_with("# ") {
            continue;
        }
        match line.find("##") {
            Some(at) if trimmed.starts_with("##") => {
                out.push_str(&line[..at]);
                out.push_str(&line[at + 1..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The guide's pages, by file name.
fn guide() -> Vec<(String, String)> {
    let dir = Path::new(WORKSPACE).join("runtime/src/guide");
    let mut pages: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    pages.sort();
    assert!(
        pages.len() >= 8,
        "the guide's pages are missing in {}",
        dir.display()
    );
    pages
}

/// Each README snippet's doctest in the guide, or why there is none.
fn doctests_of(readme: &str, pages: &[(String, String)]) -> Vec<Result<String, String>> {
    let rust: Vec<Block> = blocks(readme)
        .into_iter()
        .filter(|b| is_rust(&b.info))
        .collect();
    assert!(!rust.is_empty(), "the README has no Rust snippet");
    rust.iter()
        .map(|snippet| {
            for (page, text) in pages {
                for test in blocks(text).into_iter().filter(|b| is_rust(&b.info)) {
                    if visible(&test.text) == snippet.text {
                        if test.info.contains("ignore") {
                            return Err(format!(
                                "README line {}: its doctest ({page} line {}) is `ignore`d, so it is not compiled",
                                snippet.line, test.line
                            ));
                        }
                        return Ok(format!("{page} line {}", test.line));
                    }
                }
            }
            Err(format!(
                "README line {}: this Rust snippet is not the visible part of any doctest of \
                 runtime/src/guide/*.md; change the guide's doctest with it, so that it is compiled:\n{}",
                snippet.line, snippet.text
            ))
        })
        .collect()
}

#[test]
fn every_rust_snippet_of_the_readme_is_a_doctest_of_the_guide() {
    let readme = read("README.md");
    let pages = guide();
    let found = doctests_of(&readme, &pages);
    let errors: Vec<&String> = found.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{}",
        errors
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The first saga, the durable executor and the test kit, at least.
    assert!(found.len() >= 3, "{found:?}");
}

#[test]
fn a_changed_snippet_is_caught() {
    let pages = guide();
    let readme = read("README.md");
    let changed = readme.replacen(
        "let flight = book_flight(",
        "let flight = book_a_flight(",
        1,
    );
    assert_ne!(changed, readme, "the README no longer books a flight");
    let found = doctests_of(&changed, &pages);
    assert_eq!(found.iter().filter(|r| r.is_err()).count(), 1, "{found:?}");
    // And the hidden lines of a doctest are what rustdoc hides.
    assert_eq!(
        visible("# use a;\n#\nlet x = 1;\n    # hidden();\n## shown\n"),
        "let x = 1;\n# shown\n"
    );
}

#[test]
fn the_readme_display_example_is_the_one_the_guide_asserts() {
    let readme = read("README.md");
    let first = read("runtime/src/guide/first_saga.md");
    let shown: Vec<String> = blocks(&readme)
        .into_iter()
        .filter(|b| b.info == "text" && b.text.starts_with("saga step `"))
        .map(|b| b.text.trim_end().to_owned())
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    let asserted = format!("assert_eq!(err.to_string(), {:?});", shown[0]);
    assert!(
        first.contains(&asserted),
        "the guide's first saga does not assert the README's `Display` text:\n{asserted}"
    );
}

#[test]
fn the_saga_later_pages_include_is_the_first_pages_verbatim() {
    let first = read("runtime/src/guide/first_saga.md");
    let saga = read("runtime/src/guide/travel_saga.rs");
    let code: String = saga
        .lines()
        .skip_while(|l| l.starts_with("//") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(code.contains("#[saga]"), "{code}");
    let test = blocks(&first)
        .into_iter()
        .find(|b| is_rust(&b.info))
        .unwrap();
    assert!(
        visible(&test.text).contains(&code),
        "runtime/src/guide/travel_saga.rs is not the saga of first_saga.md; copy it over"
    );
}

/// The tables (consecutive `|` lines) of a markdown text.
fn tables(markdown: &str) -> Vec<String> {
    let mut tables = Vec::new();
    let mut current = String::new();
    for line in markdown.lines().chain([""]) {
        if line.starts_with('|') {
            current.push_str(line);
            current.push('\n');
        } else if !current.is_empty() {
            tables.push(std::mem::take(&mut current));
        }
    }
    tables
}

#[test]
fn the_readme_tables_and_setup_are_the_guides() {
    let readme = read("README.md");
    let all_pages: String = guide().into_iter().map(|(_, text)| text).collect();
    let mut checked = 0;
    for table in tables(&readme) {
        let first_cell = table.split('|').nth(1).unwrap_or("").trim();
        if ["attribute", "option", "level"].contains(&first_cell) {
            assert!(
                all_pages.contains(&table),
                "this README table is not the guide's; change both:\n{table}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "the kinds, options and durability tables");

    let setup = read("runtime/src/guide/setup.md");
    let toml: Vec<Block> = blocks(&readme)
        .into_iter()
        .filter(|b| b.info == "toml")
        .collect();
    assert_eq!(toml.len(), 1, "{toml:?}");
    assert!(
        setup.contains(&toml[0].text),
        "the README's Cargo.toml setup is not the guide's:\n{}",
        toml[0].text
    );
    for dependency in ["sagaflow = ", "tokio = ", "features = [\"testing\"]"] {
        assert!(toml[0].text.contains(dependency), "{}", toml[0].text);
    }
}

#[test]
fn the_pages_the_readme_links_exist() {
    let readme = read("README.md");
    let mut links = 0;
    for part in readme.split("](").skip(1) {
        let target = &part[..part.find(')').expect("a closed link")];
        if target.starts_with("http") {
            continue;
        }
        let path = target.split('#').next().unwrap();
        assert!(
            Path::new(WORKSPACE).join(path).exists(),
            "the README links `{target}`, which does not exist"
        );
        links += 1;
    }
    for page in [
        "docs/how-it-works.md",
        "docs/performance.md",
        "docs/travel.svg",
    ] {
        assert!(
            readme.contains(&format!("]({page}")),
            "the README does not link {page}"
        );
    }
    assert!(links >= 3);
}

#[test]
fn the_readme_shows_the_two_commands_and_ci_runs_the_same_tests() {
    let readme = read("README.md");
    assert!(readme.contains("\ncargo run -p sagaflow-examples --bin travel "));
    assert!(readme.contains("\ncargo test --workspace "));
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test --workspace"),
        ".ci/run does not run `cargo test --workspace`"
    );
}
