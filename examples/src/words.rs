//! Lists of names in words, for what the example binaries print: people read
//! "`book_flight`, then `debit_customer`", not `["book_flight", "debit_customer"]`.
//!
//! ```
//! use sagaflow_examples::words::{in_order, listed};
//!
//! assert_eq!(in_order(&["book_flight", "debit_customer"]), "`book_flight`, then `debit_customer`");
//! assert_eq!(in_order::<&str>(&[]), "nothing");
//! assert_eq!(listed(&["FL-1", "FL-2"]), "FL-1, FL-2");
//! assert_eq!(listed::<String>(&[]), "none");
//! ```

/// The names in backticks, in the order given, joined by ", then "; `nothing`
/// if there are none.
pub fn in_order<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        return "nothing".to_owned();
    }
    names
        .iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", then ")
}

/// The names joined by ", "; `none` if there are none.
pub fn listed<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}
