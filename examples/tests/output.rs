//! What the example binaries print, read as a person reads it: lists in words,
//! not `Debug`; each customer's own bookings; and no "undone" when nothing was.

use std::process::Command;

fn run(binary: &str) -> String {
    let output = Command::new(binary).output().expect("the example runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    text
}

/// The lines of `text` that start with `prefix`.
fn lines_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The text of the section `== <title> ...` of `text`, up to the next one.
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("== {title}"))
        .unwrap_or_else(|| panic!("no section {title} in\n{text}"));
    let rest = &text[start + 3..];
    &rest[..rest.find("\n== ").unwrap_or(rest.len())]
}

#[test]
fn the_travel_example_prints_for_people() {
    let text = run(env!("CARGO_BIN_EXE_travel"));
    assert!(!text.contains("[\""), "a list printed as Debug:\n{text}");

    let alan = section(&text, "Trip 2");
    assert_eq!(
        lines_starting(alan, "Undone, in this order:"),
        ["Undone, in this order: `Airline::book_flight`, then `Bank::debit_customer`"]
    );
    // Ada's flight (FL-1) stands; Alan's (FL-2) was cancelled. His line speaks
    // of his flights only.
    assert_eq!(
        lines_starting(alan, "Afterwards:"),
        ["Afterwards: Alan has €1500.00 (he started with €1500.00); \
             his flights cancelled: FL-2; his flights still booked: none."]
    );

    // Grace cannot pay: nothing was done, so nothing was undone.
    let grace = section(&text, "Trip 3");
    assert!(
        grace
            .contains("saga `book_trip` gave up; nothing had been done, so nothing needed undoing"),
        "{grace}"
    );
    assert!(!grace.contains("was undone"), "{grace}");
    assert_eq!(
        lines_starting(grace, "Undone, in this order:"),
        ["Undone, in this order: nothing"]
    );
}

#[test]
fn the_provision_example_prints_for_people_and_releases_the_address() {
    let text = run(env!("CARGO_BIN_EXE_provision"));
    assert!(!text.contains("[\""), "a list printed as Debug:\n{text}");

    let run2 = section(&text, "Run 2");
    assert_eq!(
        lines_starting(run2, "Undone, in this order:"),
        ["Undone, in this order: `create_vm`, then `create_user`"]
    );
    assert_eq!(
        lines_starting(run2, "Afterwards:"),
        ["Afterwards: 0 user(s), 0 VM(s), 0 address(es) in use; \
             VMs deleted: vm-1; users removed: linus."]
    );

    // The machine never answers: `release_ip` runs, first.
    let run3 = section(&text, "Run 3");
    assert_eq!(
        lines_starting(run3, "Undone, in this order:"),
        ["Undone, in this order: `assign_ip`, then `create_vm`, then `create_user`"]
    );
    assert!(run3.contains("undo: release_ip"), "{run3}");
}
