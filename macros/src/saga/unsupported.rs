//! Parse, what a body cannot hold: loops and concurrency other than
//! `sagaflow::join!`, each reported with what to write instead, before the
//! generic "a saga body holds only ..." could hide what was meant.
//!
//! ```text
//! for trip in &trips { .. }              while left > 0 { .. }
//! tokio::join!(a(..), b(..));            tokio::spawn(async { .. });
//! ```
//! become one error each, at the `for`, the `while`, the macro's or the call's path.

use syn::visit::Visit;
use syn::{Expr, Stmt};

use crate::ctxt::Ctxt;

const LOOP: &str = "not supported in a saga body: a saga records and undoes each step by its place in the body, and a loop's steps have no fixed number; for a few fixed items run their steps together with `sagaflow::join!`, else loop inside a step, or run one saga per item";

const CONCURRENT: &str = "a saga body runs steps concurrently only with `sagaflow::join!`, which knows which of them ran and undoes exactly those: write `let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;`";

/// Reports `stmt` if it is a loop or a concurrency construct; whether it did.
/// (Branches are read before, by `branch::read_stmt`.)
pub(super) fn report(cx: &Ctxt, stmt: &Stmt) -> bool {
    if let Some(found) = concurrency(stmt) {
        cx.push(found);
        return true;
    }
    let Stmt::Expr(expr, _) = stmt else {
        return false;
    };
    match expr {
        Expr::ForLoop(f) => cx.error_spanned_by(f.for_token, format!("a `for` loop is {LOOP}")),
        Expr::While(w) => cx.error_spanned_by(w.while_token, format!("a `while` loop is {LOOP}")),
        Expr::Loop(l) => cx.error_spanned_by(l.loop_token, format!("`loop` is {LOOP}")),
        _ => return false,
    }
    true
}

/// The first `join!`, `try_join!`, `select!` or `spawn(..)` in a statement.
fn concurrency(stmt: &Stmt) -> Option<syn::Error> {
    struct Finder(Option<syn::Error>);
    impl Finder {
        fn found(&mut self, path: &syn::Path, what: String) {
            if self.0.is_none() {
                self.0 = Some(syn::Error::new_spanned(path, what));
            }
        }
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            let Some(last) = m.path.segments.last() else {
                return;
            };
            if !super::group::is_join(&m.path)
                && ["join", "try_join", "select", "try_select"]
                    .iter()
                    .any(|name| last.ident == name)
            {
                let name = path_text(&m.path);
                self.found(&m.path, format!("`{name}!`: {CONCURRENT}"));
            }
        }
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let Expr::Path(p) = &*call.func
                && p.path.segments.len() >= 2
                && p.path.segments.last().is_some_and(|s| {
                    ["spawn", "spawn_local", "join_all", "try_join_all"]
                        .iter()
                        .any(|name| s.ident == name)
                })
            {
                let name = path_text(&p.path);
                self.found(&p.path, format!("`{name}`: {CONCURRENT}"));
            }
            syn::visit::visit_expr_call(self, call);
        }
        // A closure or an async block is its own code, as in a local's value.
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    }
    let mut finder = Finder(None);
    finder.visit_stmt(stmt);
    finder.0
}

fn path_text(path: &syn::Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}
